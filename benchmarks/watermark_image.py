"""The post-hoc dither watermark on images: false positives, true positives under attack, quality, cost.

Real digits stand in for a model's samples (rerun on samples with ``--npz samples.npz``, an
``x`` array in the digits' range [0, 16]):

* **False positives** at nominal FPR 1e-3 on >= 10,000 unwatermarked images: (a) one key over
  16,173 distinct integer images (the 1,797 digits shifted by up to one pixel), the per-key
  case; (b) the 1,797 digits under 6 keys; (c) digits watermarked with other keys; (d) 10,000
  random 28 x 28 arrays, where 784 trials per image make the test nearly continuous. The count
  of p-values <= 1e-3, its 95% Clopper-Pearson interval, the exact size of the test (64
  trials are discrete: the attainable level below 1e-3, Sidak-corrected where several
  summaries are tried) and a KS test of the randomised probability integral transform of the
  counts (uniform exactly under the null). For contrast, the same KS for a dither keyed by
  position alone (the design not taken).
* **True positives** at FPR 1e-6, per sample, clean and under each attack of
  ``trustgen.watermark.attacks_image`` at its stated strength (and a few more strengths).
* **Quality**: PSNR and the largest change, and a classifier two-sample test (random forest,
  ROC AUC, 2,000 vs 2,000) between watermarked and unwatermarked continuous images.
* **Cost**: embedding and detection time per image.

    python benchmarks/watermark_image.py                      # the default step; 30 s on one core
    python benchmarks/watermark_image.py --step 0.0156862745  # STEP_8BIT: survives 8-bit storage
    python benchmarks/watermark_image.py --smoke      # seconds: CI
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import stats

from trustgen.data.loaders import load_data
from trustgen.evaluation.fidelity_tabular import classifier_two_sample_auc
from trustgen.watermark import attacks_image as A
from trustgen.watermark.dither import STEP, detect_dither, dither_scores, embed_dither
from trustgen.watermark.keys import WatermarkKey

LOW, HIGH = 0.0, 16.0


def shifted(x: np.ndarray) -> np.ndarray:
    """Every image shifted by (dy, dx) in {-1, 0, 1}^2, zeros shifted in: 9 x N distinct images."""
    out = []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            y = np.roll(np.roll(x, dy, axis=2), dx, axis=3)
            if dy:
                y[:, :, 0 if dy > 0 else -1, :] = 0
            if dx:
                y[:, :, :, 0 if dx > 0 else -1] = 0
            out.append(y)
    return np.concatenate(out)


def pit(counts: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return stats.binom.sf(counts, n, 0.5) + rng.uniform(size=len(counts)) * stats.binom.pmf(counts, n, 0.5)


def exact_size(tries: np.ndarray, n: int, alpha: float) -> float:
    sf = stats.binom.sf(np.arange(n + 2) - 1, n, 0.5)
    sizes = []
    for k in tries:
        ok = sf[-np.expm1(k * np.log1p(-np.minimum(sf, 1 - 1e-16))) <= alpha]
        sizes.append(1 - (1 - ok.max()) ** k if len(ok) else 0.0)
    return float(np.mean(sizes))


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else stats.beta.ppf(a, k, n - k + 1)
    hi = 1.0 if k == n else stats.beta.ppf(1 - a, k + 1, n - k)
    return float(lo), float(hi)


def fpr_row(name: str, p: np.ndarray, counts: np.ndarray, tries: np.ndarray, n: int, alpha: float,
            rng: np.random.Generator) -> str:
    k = int((p <= alpha).sum())
    lo, hi = clopper_pearson(k, len(p))
    ks = stats.kstest(pit(counts, n, rng), "uniform").pvalue
    return (f"| {name} | {len(p):,} | {k} | {k / len(p):.2e} | [{lo:.1e}, {hi:.1e}] "
            f"| {exact_size(tries, n, alpha):.2e} | {ks:.3f} |")


def attacks(step: float, smoke: bool):
    """(name, strength, function x -> attacked x): the registry, then extra strengths."""
    rows = [(a.name, a.strength, lambda x, a=a: a(x, low=LOW, high=HIGH, seed=1)) for a in A.IMAGE_ATTACKS.values()]
    extra = [
        ("noise", "sigma = Delta/10", lambda x: A.gaussian_noise(x, step / 10, low=LOW, high=HIGH, seed=1)),
        ("noise", "sigma = Delta/6", lambda x: A.gaussian_noise(x, step / 6, low=LOW, high=HIGH, seed=1)),
        ("noise", "sigma = Delta/4", lambda x: A.gaussian_noise(x, step / 4, low=LOW, high=HIGH, seed=1)),
        ("quantize", "17 levels (whole numbers on [0, 16])", lambda x: A.quantize(x, 17, low=LOW, high=HIGH)),
        ("blur", "sigma = 0.3 pixel", lambda x: A.blur(x, 0.3)),
        ("jpeg", "quality 100", lambda x: A.jpeg_like(x, 100, low=LOW, high=HIGH)),
        ("brightness", "+0.5% of the range", lambda x: A.brightness_contrast(x, 0.005, 1.0, low=LOW, high=HIGH)),
    ]
    return rows + ([] if smoke else extra)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10((HIGH - LOW) ** 2 / mse)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="a few hundred images, one key: seconds")
    ap.add_argument("--step", type=float, default=STEP, help="lattice step, fraction of the range")
    ap.add_argument("--seed", type=int, default=0, help="key seed (benchmarks only: a real key is secret)")
    ap.add_argument("--npz", help="samples to watermark instead of digits (array x, values in [0, 16])")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    data, _ = load_data("digits")
    x = np.load(args.npz)["x"] if args.npz else data.x
    if args.smoke:
        x = x[:200]
    n = int(np.prod(x.shape[1:]))
    step = args.step
    key = WatermarkKey.from_seed(args.seed)
    kw = dict(low=LOW, high=HIGH, step=step)

    t0 = time.perf_counter()
    marked = embed_dither(x, key, **kw)
    t_embed = (time.perf_counter() - t0) / len(x)
    t0 = time.perf_counter()
    clean = detect_dither(marked, key, **kw, fpr=1e-6)
    t_detect = (time.perf_counter() - t0) / len(x)

    print(f"# Dither watermark on {len(x):,} {'digits' if not args.npz else args.npz} ({n} values each), "
          f"step {step:.5f} of the range (Delta = {step * (HIGH - LOW):.4f}), key seed {args.seed}\n")
    print(f"embed {t_embed * 1e3:.3f} ms / image, detect {t_detect * 1e3:.3f} ms / image (one CPU core)\n")

    change = np.abs(marked - x)
    delta = step * (HIGH - LOW)
    print("## Quality\n")
    print(f"PSNR {psnr(marked, x):.1f} dB; largest change {change.max() / delta:.3f} Delta; "
          f"{np.mean(change <= delta / 2 + 1e-12):.1%} of values move by <= Delta/2\n")

    print("## True positives (per sample, FPR 1e-6)\n")
    print("| attack | strength | PSNR vs watermarked (dB) | TPR at 1e-6 | median p | file p-value |")
    print("|---|---|---|---|---|---|")
    print(f"| none | - | inf | {clean.detected.mean():.3f} | {np.median(clean.p_values):.1e} | {clean.p_value:.1e} |")
    for name, strength, fn in attacks(step, args.smoke):
        y = fn(marked)
        d = detect_dither(y, key, **kw, fpr=1e-6)
        print(f"| {name} | {strength} | {psnr(y, marked):.1f} | {d.detected.mean():.3f} | "
              f"{np.median(d.p_values):.1e} | {d.p_value:.1e} |")

    alpha = 1e-3
    print(f"\n## False positives at nominal FPR {alpha:g} (p <= {alpha:g})\n")
    print("| null set | images | false positives | rate | 95% CI | exact size of the test | KS p (counts) |")
    print("|---|---|---|---|---|---|---|")
    many = shifted(x)
    many = many[np.unique(many.reshape(len(many), -1), axis=0, return_index=True)[1]]
    one = WatermarkKey.from_seed(10_000 + args.seed)
    sc = dither_scores(many, one, **kw)
    print(fpr_row("one key, shifted digits (per-key null)", sc.p_values, sc.primary_counts, sc.tries, n, alpha, rng))
    keys = range(1, 3 if args.smoke else 7)
    parts = [dither_scores(x, WatermarkKey.from_seed(1000 + args.seed + k), **kw) for k in keys]
    print(fpr_row(f"{len(keys)} keys x digits", *(np.concatenate([getattr(s, f) for s in parts])
                                                   for f in ("p_values", "primary_counts", "tries")), n, alpha, rng))
    parts = [dither_scores(marked, WatermarkKey.from_seed(2000 + args.seed + k), **kw) for k in keys]
    print(fpr_row(f"{len(keys)} other keys x watermarked digits", *(np.concatenate([getattr(s, f) for s in parts])
                                                                    for f in ("p_values", "primary_counts", "tries")),
                  n, alpha, rng))
    big = rng.uniform(LOW, HIGH, size=(2_000 if args.smoke else 10_000, 1, 28, 28))
    sc = dither_scores(big, one, **kw)
    print(fpr_row("one key, uniform random 1 x 28 x 28 arrays (784 trials: nearly continuous)", sc.p_values,
                  sc.primary_counts, sc.tries, big[0].size, alpha, rng))
    # The design not taken: a dither keyed by position alone, one key, the same images.
    naive = one.uniform(n, "position-only", 0)
    r = np.mod((many.reshape(len(many), -1) - LOW) / delta - naive, 1.0)
    counts = ((r < 0.25) | (r >= 0.75)).sum(1)
    p = stats.binom.sf(counts - 1, n, 0.5)
    k = int((p <= alpha).sum())
    lo, hi = clopper_pearson(k, len(p))
    print(f"| (position-only dither, not used) one key, shifted digits | {len(p):,} | {k} | {k / len(p):.2e} | "
          f"[{lo:.1e}, {hi:.1e}] | {stats.binom.sf(stats.binom.isf(alpha, n, 0.5), n, 0.5):.2e} | "
          f"{stats.kstest(pit(counts, n, rng), 'uniform').pvalue:.1e} |")

    if not args.smoke and (not args.npz or len(x) >= 4000):
        print("\n## Classifier two-sample test (random forest, 5-fold ROC AUC, 2,000 watermarked vs 2,000 not)\n")
        print("| content | AUC |")
        print("|---|---|")
        if args.npz:
            cases = {f"{args.npz} (first 2,000 vs the next 2,000 watermarked)": x[:4000].astype(float)}
        else:
            pool = A.blur(rng.permutation(shifted(x))[:4000], 0.5) + rng.normal(0, 0.5, size=(4000, 1, 8, 8))
            cases = {
                # a smooth density everywhere (no atoms, no edges): what a decoder without clamping gives
                "smooth continuous (blurred digits + noise, squashed into (0.5, 15.5) by tanh)":
                    8 + 7.5 * np.tanh((pool - 8) / 6),
                # the same clipped to the range: atoms at 0 and 16, as a clamped decoder gives
                "the same clipped to [0, 16] (atoms at the range's ends)": np.clip(pool, LOW, HIGH),
                "integer digits (values 0..16)": rng.permutation(shifted(x))[:4000].astype(float),
            }
        for name, imgs in cases.items():
            a, b = imgs[:2000], embed_dither(imgs[2000:4000], key, **kw)
            auc = classifier_two_sample_auc(a.reshape(2000, -1), b.reshape(2000, -1), seed=args.seed)
            print(f"| {name} | {auc:.3f} |")

if __name__ == "__main__":
    main()
