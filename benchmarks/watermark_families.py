"""Watermarked samples of every family: the table acceptance case and quality (marked vs plain).

Tables (breast_cancer, a run per family): ``--sets`` releases of 250 watermarked samples, each
edited as the issue states (20% of rows deleted, Gaussian noise of a tenth of the step on every
number, rows shuffled, columns reordered) and cut to 200 rows; the share detected at p < 1e-6,
and the median p-value. Quality: a classifier two-sample test (random forest ROC AUC, 5-fold, mean of 3 fold splits)
between 2,000 watermarked and 2,000 unwatermarked samples of the same run (0.5: the same), beside
the same test between two unwatermarked draws (what the test gives when nothing differs), and
TSTR (logistic regression trained on the samples, tested on the real rows) for both.
Images (digits): the same quality comparison (C2ST on pixels; TSTR accuracy on real digits).

    python benchmarks/watermark_families.py --steps 1500 --seed 0
    python benchmarks/watermark_families.py --smoke
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from trustgen.data.loaders import load_data
from trustgen.evaluation.fidelity_tabular import classifier_two_sample_auc
from trustgen.evaluation.utility import tstr
from trustgen.pipeline import train
from trustgen.run import Run
from trustgen.sampling import Sampler
from trustgen.training import TrainConfig
from trustgen.watermark import attacks_table as T
from trustgen.watermark.keys import WatermarkKey
from trustgen.watermark.release import watermark_batch, watermarked_sampler
from trustgen.watermark.table import DEFAULT_STRENGTH, detect_table

ap = argparse.ArgumentParser()
ap.add_argument("--families", nargs="+", default=["vae", "gan", "diffusion"])
ap.add_argument("--steps", type=int, default=1500)
ap.add_argument("--runs-dir", type=Path, help="reuse DIR/{family} (digits) and DIR/bc-{family} (breast_cancer)")
ap.add_argument("--sets", type=int, default=50)
ap.add_argument("--n", type=int, default=2000)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--smoke", action="store_true")
args = ap.parse_args()
if args.smoke:
    args.steps, args.sets, args.n, args.families = 3, 3, 100, ["vae"]
torch.set_num_threads(1)


def run_for(data: str, family: str) -> Run:
    name = family if data == "digits" else f"bc-{family}"
    if args.runs_dir is not None and (args.runs_dir / name / "run.json").is_file():
        return Run.load(args.runs_dir / name)
    run = train(data, family, TrainConfig(steps=args.steps, seed=args.seed, progress=False))
    if args.runs_dir is not None:
        run.save(args.runs_dir / name)
    return run


def c2st(a, b) -> float:
    """The C2ST AUC averaged over 3 fold splits (one split's pooled out-of-fold AUC has a standard
    error near 0.01 on 2,000 vs 2,000, and under the null it leans below 0.5)."""
    return float(np.mean([classifier_two_sample_auc(a, b, seed=args.seed + s) for s in range(3)]))


def quality(run, marked, plain, control, real, flat) -> tuple[float, float, float, float]:
    """C2ST marked vs plain, C2ST plain vs another plain draw (the null's reference), TSTR x2."""
    auc = c2st(flat(marked.data), flat(plain.data))
    null_auc = c2st(flat(control.data), flat(plain.data))
    xs = [flat(b.data) for b in (marked, plain)]
    scores = [tstr(x, b.labels, flat(real), real_y, models=("logistic",), seed=args.seed)["logistic"]
              for x, b in zip(xs, (marked, plain))]
    metric = "accuracy" if run.schema.kind == "image" else "roc_auc"
    return auc, null_auc, scores[0][metric], scores[1][metric]


rows = []
for family in args.families:
    key = WatermarkKey.from_seed(args.seed)
    # ---- tables
    run = run_for("breast_cancer", family)
    schema = run.schema
    real, _ = load_data("breast_cancer")
    real_y = run.encoder.transform(real)[1]  # class indices, as the samples' labels
    features = [c.name for c in schema.columns if c.name != schema.label]
    sampler = watermarked_sampler(run, key)
    detected, pvals = 0, []
    for i in range(args.sets):
        release = watermark_batch(sampler.sample(250, seed=args.seed + 100 + i), key, schema).data
        edited = T.delete_rows(release, 0.2, seed=i)
        edited = T.add_noise(edited, schema, DEFAULT_STRENGTH / 10, seed=i)
        edited = T.reorder_columns(T.shuffle_rows(edited, seed=i), seed=i).head(200)
        p = detect_table(edited, schema, key).p_value
        pvals.append(p)
        detected += p < 1e-6
    marked = watermark_batch(sampler.sample(args.n, seed=args.seed + 1), key, schema)
    # Not the marked draw's seed: the watermark keeps the noise's magnitudes, so the same seed makes
    # near-twins of marked and plain samples, and twins split across folds pull the AUC below 0.5.
    plain = Sampler(run).sample(args.n, seed=args.seed + 5)
    control = Sampler(run).sample(args.n, seed=args.seed + 3)
    table_q = quality(run, marked, plain, control, real, lambda d: d[features].to_numpy(np.float64))
    # ---- images
    run = run_for("digits", family)
    schema = run.schema
    real, _ = load_data("digits")
    real_y = real.y
    marked = watermark_batch(watermarked_sampler(run, key).sample(args.n, seed=args.seed + 2), key, schema)
    plain = Sampler(run).sample(args.n, seed=args.seed + 6)  # independent of the marked draw (see above)
    control = Sampler(run).sample(args.n, seed=args.seed + 4)
    image_q = quality(run, marked, plain, control, real, lambda d: np.asarray(d.x, np.float64).reshape(len(d.x), -1))
    rows.append((family, detected / args.sets, float(np.median(pvals)), table_q, image_q))

print(f"runs of {args.steps} steps, key seed {args.seed}; {args.sets} releases per family; {args.n} vs {args.n} "
      "samples for quality\n")
print("| family | tables: detected at p < 1e-6 (200 rows after 20% deletion + noise step/10 + shuffle + reorder) "
      "| median p | tables: C2ST AUC marked vs plain (plain vs plain) | tables: TSTR AUC marked / plain "
      "| digits: C2ST AUC marked vs plain (plain vs plain) | digits: TSTR accuracy marked / plain |")
print("|---|---|---|---|---|---|---|")
for family, tpr, med, tq, iq in rows:
    print(f"| {family} | {tpr:.3f} | {med:.1e} | {tq[0]:.3f} ({tq[1]:.3f}) | {tq[2]:.3f} / {tq[3]:.3f} | "
          f"{iq[0]:.3f} ({iq[1]:.3f}) | {iq[2]:.3f} / {iq[3]:.3f} |")
