"""The table watermark on breast_cancer: detection under each edit, false positives, cost.

True positives: for each of ``--subsets`` random sets of ``--rows`` real rows (a stand-in for
released samples; the watermark is post-hoc and row-wise, so where the rows came from does not
matter), each with its own key, embed, apply an edit at its stated strength, detect; TPR is the
share with p < 1e-6. The acceptance case is ``delete 20% + noise + shuffle + reorder``.

False positives: ``--null`` unwatermarked row sets of ``--rows`` rows, each tested against its
own key (p-values are independent across keys given the rows), and ``--other`` watermarked row
sets tested against a different key than the one they carry. Reported: the empirical FPR at
1e-3 and 1e-2 with their binomial 99.9% intervals, and a KS test of uniformity.

    python benchmarks/watermark_table.py [--smoke] [--subsets 200] [--rows 200] [--null 10000] [--other 2000]

Prints a markdown table. Seeds: keys ``WatermarkKey.from_seed(...)``, rows from
``numpy.random.default_rng(--seed)``.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from scipy.stats import binom, kstest

from trustgen.data.loaders import load_data
from trustgen.watermark.attacks_table import (add_noise, delete_rows, insert_rows, reorder_columns, round_values,
                                              shuffle_rows)
from trustgen.watermark.keys import WatermarkKey
from trustgen.watermark.table import DEFAULT_STRENGTH, detect_table, embed_table

FPR = 1e-6
D = DEFAULT_STRENGTH  # noise levels below are fractions of the range: D is one lattice step


def scenarios(schema, other):
    """name -> edit(marked, seed). Strengths are the ones stated in docs/watermark-table.md."""
    return {
        "clean": lambda t, s: t,
        "delete 20% of rows": lambda t, s: delete_rows(t, 0.2, s),
        "delete 80% of rows (40 left)": lambda t, s: delete_rows(t, 0.8, s),
        "insert 50% unwatermarked rows": lambda t, s: insert_rows(t, other, 0.5, s),
        "insert 400% unwatermarked rows": lambda t, s: insert_rows(t, other, 4.0, s),
        "shuffle rows": lambda t, s: shuffle_rows(t, s),
        "reorder columns": lambda t, s: reorder_columns(t, s),
        "noise sd = step/10 (1e-4 of range)": lambda t, s: add_noise(t, schema, D / 10, s),
        "noise sd = step/4": lambda t, s: add_noise(t, schema, D / 4, s),
        "noise sd = step/2": lambda t, s: add_noise(t, schema, D / 2, s),
        "noise sd = step (1e-3 of range)": lambda t, s: add_noise(t, schema, D, s),
        "round to 4 decimals": lambda t, s: round_values(t, schema, 4),
        "round to 3 decimals": lambda t, s: round_values(t, schema, 3),
        "round to 2 decimals": lambda t, s: round_values(t, schema, 2),
        "round to 1 decimal": lambda t, s: round_values(t, schema, 1),
        "round to 0 decimals": lambda t, s: round_values(t, schema, 0),
        "delete 20% + noise step/10 + shuffle + reorder": lambda t, s: reorder_columns(shuffle_rows(
            add_noise(delete_rows(t, 0.2, s), schema, D / 10, s + 1), s + 2), s + 3),
    }


def fpr_row(detections: list, what: str, rng) -> list[str]:
    """The FPR at 1e-3 and 1e-2 against their binomial 99.9% intervals, and KS tests of
    uniformity: of the p-values themselves (discrete and conservative: with 10,000 of them a KS
    test sees the binomial's steps) and of randomised ones, P(X > c) + V P(X = c) with V uniform
    (exactly uniform under the null)."""
    p = np.array([d.p_value for d in detections])
    c = np.array([d.counts[0] for d in detections])
    n = np.array([d.trials for d in detections])
    rand = binom.sf(c, n, 0.5) + rng.uniform(size=len(p)) * binom.pmf(c, n, 0.5)
    out = []
    for level in (1e-3, 1e-2):
        hits = int((p <= level).sum())
        lo, hi = binom.ppf(0.0005, len(p), level) / len(p), binom.isf(0.0005, len(p), level) / len(p)
        out.append(f"| {what} | {len(p):,} | {level:g} | {hits / len(p):.4f} | [{lo:.4f}, {hi:.4f}] | "
                   f"{'yes' if lo <= hits / len(p) <= hi else 'NO'} |")
    for name, values in (("KS uniform, p-values", p), ("KS uniform, randomised", rand)):
        ks = kstest(values, "uniform").pvalue
        out.append(f"| {what} | {len(p):,} | {name} | p = {ks:.3g} | > 1e-3 | {'yes' if ks > 1e-3 else 'NO'} |")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="a few subsets and null sets (CI)")
    ap.add_argument("--subsets", type=int, default=200)
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--null", type=int, default=10_000)
    ap.add_argument("--other", type=int, default=2_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.smoke:
        args.subsets, args.null, args.other = 5, 200, 50
    df, schema = load_data("breast_cancer")
    rng = np.random.default_rng(args.seed)
    n = len(df)

    def subset(rng=rng):
        return np.sort(rng.choice(n, size=args.rows, replace=False))

    print(f"# Table watermark on breast_cancer ({args.rows}-row sets, strength {DEFAULT_STRENGTH:g}, "
          f"decision at FPR {FPR:g})\n")
    t_embed = t_detect = 0.0
    results: dict[str, list[tuple[float, float]]] = {}
    for i in range(args.subsets):
        key = WatermarkKey.from_seed(10_000 + i)
        rows = subset()
        t0 = time.perf_counter()
        marked = embed_table(df.iloc[rows], schema, key)
        t_embed += time.perf_counter() - t0
        other = df.drop(index=df.index[rows])
        for name, edit in scenarios(schema, other).items():
            attacked = edit(marked, 1000 * i)
            t0 = time.perf_counter()
            d = detect_table(attacked, schema, key, fpr=FPR)
            if name == "clean":
                t_detect += time.perf_counter() - t0
            results.setdefault(name, []).append((d.p_value, d.counts.sum() / (d.trials * len(d.counts))))
    print("| edit (strength) | TPR at FPR 1e-6 | median p-value | mean share of agreeing trials |")
    print("|---|---|---|---|")
    for name, rs in results.items():
        p = np.array([r[0] for r in rs])
        agree = np.mean([r[1] for r in rs])
        print(f"| {name} | {np.mean(p < FPR):.3f} ({int((p < FPR).sum())}/{len(p)}) | {np.median(p):.2g} | "
              f"{agree:.3f} |")

    rng_null = np.random.default_rng(args.seed + 1)  # the null sets do not depend on --subsets
    null = [detect_table(df.iloc[subset(rng_null)], schema, WatermarkKey.from_seed(1_000_000 + j))
            for j in range(args.null)]
    other_key = [detect_table(embed_table(df.iloc[subset(rng_null)], schema, WatermarkKey.from_seed(2_000_000 + j)),
                              schema, WatermarkKey.from_seed(3_000_000 + j)) for j in range(args.other)]
    print("\n| null | tables | level | empirical | binomial 99.9% interval | inside |")
    print("|---|---|---|---|---|---|")
    for line in (fpr_row(null, "unwatermarked, own key each", rng_null)
                 + fpr_row(other_key, "watermarked, other key", rng_null)):
        print(line)
    print(f"\nfalse positives at 1e-6: {sum(d.p_value <= FPR for d in null)}/{len(null)} unwatermarked, "
          f"{sum(d.p_value <= FPR for d in other_key)}/{len(other_key)} other-key")
    if args.subsets:
        per_row = 1e6 / (args.subsets * args.rows)
        print(f"cost (CPU, per row, 30 columns): embed {t_embed * per_row:.0f} us, detect {t_detect * per_row:.0f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
