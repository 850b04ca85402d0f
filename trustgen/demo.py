"""``trustgen demo``: the main job on the built-in digits, with differential privacy, in about a
minute on a 2-core CPU.

Trains a class-conditional VAE on 70% of scikit-learn's 8x8 digits with DP-SGD at
:data:`DEMO_EPSILON`, prints the privacy summary, samples ten of each class into a grid PNG,
and measures on the 30% the model never saw: the accuracy of a logistic regression trained only
on 2,000 generated digits (TSTR), and the label coverage (how many classes a classifier of real
digits recognises in the digits generated for them). Those two evaluations read real digits and
are not private; the run and the grid are (post-processing of the DP model).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from trustgen.data.encoders import ImageData
from trustgen.data.loaders import load_data
from trustgen.errors import ConfigError
from trustgen.io import atomic_write_text
from trustgen.plots import image_grid, save_figure
from trustgen.pipeline import train
from trustgen.privacy.config import PrivacyConfig
from trustgen.training import TrainConfig
from trustgen.sampling import Sampler

DEMO_STEPS, SMOKE_STEPS = 500, 4
DEMO_EPSILON = 10.0
DEMO_BATCH = 256
# Half the default convolution width: a DP step (per-example gradients of every weight) costs
# about a third as much, so the demo fits its time with more steps (benchmarks/README.md).
DEMO_OPTIONS = {"width": 16}


def run_demo(out: Path, *, smoke: bool = False, seed: int = 0, device: str = "auto", progress: bool = True) -> dict:
    """Run the demo into ``out`` and return its summary (also written to ``out/summary.json``)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from trustgen.evaluation.diversity import label_coverage
    from trustgen.evaluation.utility import tstr

    if out.is_dir() and any(out.iterdir()) and not (out / "summary.json").is_file():
        raise ConfigError(f"--out {str(out)!r} is not empty and holds no demo (no summary.json): choose a new or "
                          "empty directory")
    t0 = time.time()
    data, schema = load_data("digits")
    i_tr, i_te = train_test_split(np.arange(len(data)), test_size=0.3, random_state=seed, stratify=data.y)
    train_data, test = ImageData(data.x[i_tr], data.y[i_tr]), ImageData(data.x[i_te], data.y[i_te])
    steps = SMOKE_STEPS if smoke else DEMO_STEPS
    cfg = TrainConfig(steps=steps, batch_size=DEMO_BATCH, seed=seed, device=device, progress=progress,
                      checkpoint_every=50)
    run = train(train_data, "vae", cfg, schema=schema, out=out / "run", overwrite=True,  # a rerun replaces the demo
                privacy=PrivacyConfig(epsilon=DEMO_EPSILON), model_options=DEMO_OPTIONS)
    grid = Sampler(run).sample(100, labels=np.repeat(np.arange(10), 10), seed=seed)
    eps = run.privacy.epsilon
    save_figure(image_grid(grid.data.x, grid.labels, schema.classes, low=schema.low, high=schema.high,
                           title=f"trustgen demo: conditional VAE on digits, DP (epsilon {eps:.2f})"),
                out / "samples.png")
    synth = Sampler(run).sample(2000, labels=np.arange(2000) % 10, seed=seed + 1)
    flat = lambda x: np.asarray(x, dtype=np.float64).reshape(len(x), -1) / 16.0  # noqa: E731
    acc = tstr(flat(synth.data.x), synth.labels, flat(test.x), test.y,
               models={"logistic": LogisticRegression(max_iter=2000)})["logistic"]["accuracy"]
    judge = LogisticRegression(max_iter=2000).fit(flat(train_data.x), train_data.y)  # a classifier of real digits
    coverage = label_coverage(judge.predict(flat(synth.data.x)), synth.labels, 10)
    summary = {
        "model": "vae", "model_options": DEMO_OPTIONS, "dataset": "digits", "steps": steps, "seed": seed, "train_images": len(train_data),
        "epsilon": round(eps, 4), "delta": run.privacy.delta,
        "tstr_accuracy_on_holdout": round(acc, 4), "label_coverage": coverage["coverage"],
        "seconds": round(time.time() - t0, 1), "run": str(out / "run"), "grid": str(out / "samples.png"),
        "privacy": f"DP-SGD, epsilon {eps:.3f} at delta {run.privacy.delta:.0e} (trustgen report {out / 'run'})",
    }
    summary["text"] = (
        f"trustgen demo: trained a conditional VAE on {len(train_data)} digits with differential privacy "
        f"in {summary['seconds']} s.\n"
        + "\n".join("  " + line for line in run.privacy.summary().splitlines()[:3]) + "\n"
        f"  sample grid:  {summary['grid']}\n  run:          {summary['run']}\n"
        f"  a classifier trained only on 2,000 synthetic digits scores {acc:.3f} accuracy on "
        f"{len(test)} real held-out digits;\n  a classifier of real digits recognises {coverage['coverage']} of "
        f"the 10 classes in the digits generated for them (label coverage).\n"
        f"  (those two scores read real digits: they are not private; the run and the grid are)"
    )
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
