"""Watermarked sampling on digits, per model family: detection, false positives, quality, cost.

For each family (a run trained here on digits, or given with --runs-dir DIR/{vae,gan,diffusion}):

* **True positives** per sample at FPR 1e-6, for the latent test (inversion), the dither test
  (values) and their Bonferroni combination (what ``trustgen detect --run`` reports), on clean
  watermarked samples and under each image attack at its default strength.
* **False positives** at nominal 1e-3 of the combined test on unwatermarked samples of the
  same model (the dither on all of them, the latent test on a subset: inversion is the cost),
  with the 95% Clopper-Pearson interval of the rate.
* **Quality**: a classifier two-sample test (random forest, ROC AUC, 5-fold, mean of 3 splits)
  between 2,000 watermarked and 2,000 unwatermarked samples (0.5: indistinguishable), beside the
  same test between two unwatermarked draws (the null's reference).
* **Files**: the combined decision on files of 100 samples (dither pooled over the file,
  latent Bonferroni over its samples), clean and under each attack.
* **Cost**: watermarked sampling time / plain sampling time (side by side, same run), and
  detection time per sample.

    python benchmarks/watermark.py --steps 1500 --seed 0         # trains three runs (minutes on CPU)
    python benchmarks/watermark.py --runs-dir /tmp/wm             # reuse runs trained before
    python benchmarks/watermark.py --smoke                         # seconds: CI
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from trustgen.evaluation.fidelity_tabular import classifier_two_sample_auc
from trustgen.pipeline import train
from trustgen.run import Run
from trustgen.sampling import Sampler
from trustgen.training import TrainConfig
from trustgen.watermark import attacks_image as A
from trustgen.watermark.dither import detect_images
from trustgen.watermark.keys import WatermarkKey
from trustgen.watermark.latent import detect_latent, latent_center
from trustgen.watermark.release import watermark_batch, watermarked_sampler

ap = argparse.ArgumentParser()
ap.add_argument("--families", nargs="+", default=["vae", "gan", "diffusion"])
ap.add_argument("--steps", type=int, default=1500)
ap.add_argument("--runs-dir", type=Path)
ap.add_argument("--n", type=int, default=2000, help="watermarked (and unwatermarked) samples per family")
ap.add_argument("--null", type=int, default=10_000, help="unwatermarked samples for the dither FPR")
ap.add_argument("--latent-n", type=int, default=500, help="samples inverted per measurement (the latent test)")
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--smoke", action="store_true")
args = ap.parse_args()
if args.smoke:
    args.steps, args.n, args.null, args.latent_n, args.families = 3, 60, 200, 20, ["vae"]
torch.set_num_threads(1)
key, other = WatermarkKey.from_seed(args.seed), WatermarkKey.from_seed(args.seed + 1)
FPR = 1e-6
FILE = 10 if args.smoke else 100  # samples per file, for the file-level decision


def c2st(a, b) -> float:
    """The C2ST AUC averaged over 3 fold splits (one split's has a standard error near 0.01)."""
    return float(np.mean([classifier_two_sample_auc(a, b, seed=args.seed + s) for s in range(3)]))


def clopper(k: int, n: int) -> str:
    lo = stats.beta.ppf(0.025, k, n - k + 1) if k else 0.0
    hi = stats.beta.ppf(0.975, k + 1, n - k) if k < n else 1.0
    return f"{k / n:.1e} [{lo:.1e}, {hi:.1e}]"


def run_for(family: str) -> Run:
    if args.runs_dir is not None and (args.runs_dir / family / "run.json").is_file():
        return Run.load(args.runs_dir / family)
    return train("digits", family, TrainConfig(steps=args.steps, seed=args.seed, progress=False))


rows = []
for family in args.families:
    run = run_for(family)
    schema = run.schema
    t0 = time.perf_counter()
    plain = Sampler(run).sample(args.n, seed=args.seed + 10)
    t_plain = time.perf_counter() - t0
    t0 = time.perf_counter()
    marked = watermark_batch(watermarked_sampler(run, key).sample(args.n, seed=args.seed + 10), key, schema)
    t_marked = time.perf_counter() - t0
    inverter = Sampler(run)
    center = latent_center(inverter)
    m = min(args.latent_n, args.n)

    def tpr(images, labels) -> tuple[float, float, float, float]:
        """Per sample: dither, latent, combined TPR; per file of FILE samples: the combined test's."""
        dith = detect_images(images, schema, key, fpr=FPR).p_values
        x, _ = run.encoder.transform(images)
        lat = detect_latent(inverter, key, x[:m], labels[:m], fpr=FPR, center=center).p_values
        both = np.minimum(1.0, 2 * np.minimum(dith[:m], lat))
        files = []
        for s in range(0, m - FILE + 1, FILE):  # what `trustgen detect --run` decides for a file
            part = type(images)(images.x[s:s + FILE], None if images.y is None else images.y[s:s + FILE])
            p_dither = detect_images(part, schema, key, fpr=FPR).p_value
            p_latent = min(1.0, FILE * lat[s:s + FILE].min())
            files.append(min(1.0, 2 * min(p_dither, p_latent)) <= FPR)
        return (float((dith <= FPR).mean()), float((lat <= FPR).mean()), float((both <= FPR).mean()),
                float(np.mean(files)) if files else float("nan"))

    t0 = time.perf_counter()
    clean = tpr(marked.data, marked.labels)
    t_detect = (time.perf_counter() - t0) / m
    attacked = {}
    for name, attack in A.IMAGE_ATTACKS.items():
        x = np.clip(attack(np.asarray(marked.data.x, np.float64), low=schema.low, high=schema.high,
                           seed=args.seed), schema.low, schema.high)
        attacked[name] = tpr(type(marked.data)(x, marked.data.y), marked.labels)
    # false positives of the combined test on unwatermarked samples of the same model
    null = Sampler(run).sample(args.null, seed=args.seed + 20)
    dith_null = detect_images(null.data, schema, key, fpr=1e-3).p_values
    x_null, _ = run.encoder.transform(null.data)
    lat_null = detect_latent(inverter, key, x_null[:m], null.labels[:m], fpr=1e-3, center=center).p_values
    both_null = np.minimum(1.0, 2 * np.minimum(dith_null[:m], lat_null))
    other_marked = watermark_batch(watermarked_sampler(run, other).sample(m, seed=args.seed + 30), other, schema)
    other_p = detect_images(other_marked.data, schema, key, fpr=1e-3).p_values
    # Quality against independent plain draws: the same seed as the marked draw (as timed above)
    # makes near-twins (the watermark keeps the noise's magnitudes), which pull a C2ST below 0.5.
    reference, control = (Sampler(run).sample(args.n, seed=args.seed + s) for s in (40, 50))
    flat = [b.data.x.reshape(args.n, -1) for b in (marked, reference, control)]
    auc = (c2st(flat[0], flat[1]), c2st(flat[2], flat[1]))
    rows.append((family, clean, attacked, (int((dith_null <= 1e-3).sum()), len(dith_null)),
                 (int((both_null <= 1e-3).sum()), m), (int((other_p <= 1e-3).sum()), m),
                 stats.kstest(dith_null, "uniform").pvalue, auc, t_marked / t_plain, t_detect))

print(f"digits, runs of {args.steps} steps (or --runs-dir), key seed {args.seed}, {args.n} samples per family; "
      f"latent test on {min(args.latent_n, args.n)} of them\n")
print("| family | TPR@1e-6 dither / latent / combined (clean) | FPR@1e-3 dither (unmarked) | FPR@1e-3 combined "
      "(unmarked) | FPR@1e-3 other key | C2ST AUC marked vs plain (plain vs plain) | sampling time ratio "
      "| detect s/sample |")
print("|---|---|---|---|---|---|---|---|")
for family, clean, attacked, fd, fb, fo, ks, auc, ratio, td in rows:
    print(f"| {family} | {clean[0]:.3f} / {clean[1]:.3f} / {clean[2]:.3f} (files {clean[3]:.2f}) | {clopper(*fd)} | {clopper(*fb)} | "
          f"{clopper(*fo)} | {auc[0]:.3f} ({auc[1]:.3f}) | {ratio:.2f} | {td:.4f} |")
print(f"\nTPR@1e-6 under attack, per sample (dither / latent / combined) and per file of {FILE} samples "
      f"(combined; {m // FILE} files):\n")
names = list(A.IMAGE_ATTACKS)
print("| family | " + " | ".join(f"{n} ({A.IMAGE_ATTACKS[n].strength})" for n in names) + " |")
print("|---|" + "---|" * len(names))
for family, clean, attacked, *_ in rows:
    print(f"| {family} | " + " | ".join("{:.2f} / {:.2f} / {:.2f}; files {:.2f}".format(*attacked[n]) for n in names) + " |")
