"""Side-by-side peer: MST or AIM from smartnoise-synth 1.0.8, on a declared (public) domain.

Runs with the python of smartnoise's OWN virtualenv, never trustgen's (smartnoise pins opacus 0.14);
this script does not import trustgen. See docs in /work/shared/STACK-NOTES.md ("Peers").

    python benchmarks/marginal_peers.py --train train.csv --domain domain.json --synth mst|aim \
        --epsilon 1.0 --delta 1e-5 --n N --seed S --out synth.csv [--max-rounds R] [--bins B]

domain.json (written by the caller, all values public):
    {"columns": [{"name": ..., "kind": "numeric", "low": ..., "high": ..., "integer": bool}
                 | {"name": ..., "kind": "categorical", "categories": [...]}]}

Preprocessing never looks at the private rows:
- Each numeric column is cut into --bins equal-width bins (default 10) over its declared [low, high];
  values outside are clamped. 10 is the default because MST/AIM add the same noise to every cell of
  a measured marginal: at small n (hundreds to a few thousand rows) and epsilon ~1 more bins mean
  more noisy cells per count and worse marginals; raise --bins for large tables.
- Each categorical column is label-encoded over its declared categories only; a training value outside
  the declared categories is an error (exit 2).
- The TableTransformer is fitted on a public table built from the domain alone (the bounds and the
  category list), so smartnoise's own `fit` never runs on the private rows. (Left alone it does: a
  BinTransformer with a declared bound of 0 reports itself unfitted, which makes the synthesizer refit
  the whole TableTransformer, label categories included, on the private data.) The script checks this.
- Decoding: a sampled bin becomes a value drawn uniformly inside that bin; integer columns draw a
  uniform integer inside the bin (or the rounded bin centre if the bin holds no integer).
  This is post-processing of the DP model and spends no budget.

--max-rounds R bounds AIM's time: AIM's `rounds` (default 16 x number of columns, each round refits the
graphical model); fewer rounds also means a larger budget share per round. R must be >= the number of
columns (the 1-way marginals use d/R of the rounds' budget up front). For MST it is ignored.
The fit time in seconds is printed to stderr. smartnoise draws its Gaussian noise from OpenDP (not
seedable); --seed seeds numpy, which smartnoise/mbi use for selection and sampling, and the decoding.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time

import numpy as np
import pandas as pd


def fail(msg: str) -> None:
    print(f"marginal_peers.py: error: {msg}", file=sys.stderr)
    raise SystemExit(2)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one-line reason, exit 2
        fail(message)


def parse_args(argv):
    ap = _Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True)
    ap.add_argument("--domain", required=True)
    ap.add_argument("--synth", required=True, choices=["mst", "aim"])
    ap.add_argument("--epsilon", required=True, type=float)
    ap.add_argument("--delta", required=True, type=float)
    ap.add_argument("--n", required=True, type=int)
    ap.add_argument("--seed", required=True, type=int)
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-rounds", type=int, default=None)
    ap.add_argument("--bins", type=int, default=10)
    a = ap.parse_args(argv)
    if not (math.isfinite(a.epsilon) and a.epsilon > 0):
        fail("--epsilon must be a finite number > 0")
    if not (0 < a.delta < 1):
        fail("--delta must be in (0, 1)")
    if a.n < 1:
        fail("--n must be >= 1")
    if a.max_rounds is not None and a.max_rounds < 1:
        fail("--max-rounds must be >= 1")
    if a.bins < 2:
        fail("--bins must be >= 2")
    return a


def load_domain(path):
    try:
        with open(path) as f:
            spec = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"cannot read --domain {path}: {e}")
    cols = spec.get("columns") if isinstance(spec, dict) else None
    if not isinstance(cols, list) or not cols:
        fail("domain.json needs a non-empty 'columns' list")
    names = set()
    for c in cols:
        if not isinstance(c, dict) or "name" not in c or c.get("kind") not in ("numeric", "categorical"):
            fail(f"bad domain column {c!r}: needs 'name' and kind 'numeric' or 'categorical'")
        if c["name"] in names:
            fail(f"duplicate domain column {c['name']!r}")
        names.add(c["name"])
        if c["kind"] == "numeric":
            lo, hi = c.get("low"), c.get("high")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (lo, hi)) or not lo < hi:
                fail(f"numeric column {c['name']!r} needs finite low < high")
        else:
            cats = c.get("categories")
            if not isinstance(cats, list) or len(cats) < 1:
                fail(f"categorical column {c['name']!r} needs a non-empty 'categories' list")
            if len({str(v) for v in cats}) != len(cats):
                fail(f"categorical column {c['name']!r} has duplicate categories")
    return cols


def encode_private(train: pd.DataFrame, cols):
    """Private rows -> table for the transformer: numerics as floats, categoricals as declared indices."""
    missing = [c["name"] for c in cols if c["name"] not in train.columns]
    if missing:
        fail(f"--train lacks domain columns {missing}")
    out = {}
    for c in cols:
        s = train[c["name"]]
        if s.isna().any():
            fail(f"column {c['name']!r} has missing values (not supported)")
        if c["kind"] == "numeric":
            v = pd.to_numeric(s, errors="coerce")
            if v.isna().any():
                fail(f"numeric column {c['name']!r} has non-numeric values")
            out[c["name"]] = v.astype(float)
        else:
            index = {str(v): i for i, v in enumerate(c["categories"])}
            # numeric categories may be read back as "1.0" for 1, etc.
            for i, v in enumerate(c["categories"]):
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    index.setdefault(repr(float(v)), i)
            codes = s.map(index)
            if codes.isna().any():
                fail(f"column {c['name']!r} has values outside its declared categories")
            out[c["name"]] = codes.astype(int)
    return pd.DataFrame(out, columns=[c["name"] for c in cols])


def public_table(cols, bins):
    """A table built from the declared domain alone, used to fit the transformer."""
    k = max([bins] + [len(c["categories"]) for c in cols if c["kind"] == "categorical"])
    data = {}
    for c in cols:
        if c["kind"] == "numeric":
            data[c["name"]] = np.linspace(float(c["low"]), float(c["high"]), k)
        else:
            m = len(c["categories"])
            data[c["name"]] = [i % m for i in range(k)]  # every declared index appears
    return pd.DataFrame(data, columns=[c["name"] for c in cols])


def build_transformer(cols, bins):
    from snsynth.transform import BinTransformer, LabelTransformer, TableTransformer

    ts = []
    for c in cols:
        if c["kind"] == "numeric":
            ts.append(BinTransformer(bins=bins, lower=float(c["low"]), upper=float(c["high"]), nullable=False))
        else:
            ts.append(LabelTransformer(nullable=False))
    tt = TableTransformer(ts)
    tt.fit(public_table(cols, bins), epsilon=0.0)
    check_transformer(tt, cols, bins)
    return tt


def check_transformer(tt, cols, bins):
    if not tt.fit_complete or tt.needs_epsilon:
        raise RuntimeError("transformer not fitted on the declared domain")
    for t, c in zip(tt.transformers, cols):
        if c["kind"] == "numeric":
            if (t.fit_lower, t.fit_upper, t.bins) != (float(c["low"]), float(c["high"]), bins):
                raise RuntimeError(f"bounds of {c['name']!r} are not the declared ones")
        elif list(t.categories) != list(range(len(c["categories"]))):
            raise RuntimeError(f"categories of {c['name']!r} are not the declared ones")


def decode(df, cols, bins, rng):
    """Sampled bin centres / category indices -> values in the declared domain."""
    out = {}
    for c in cols:
        s = df[c["name"]]
        if c["kind"] == "categorical":
            cats = c["categories"]
            out[c["name"]] = [cats[int(i)] for i in s]
            continue
        lo, hi = float(c["low"]), float(c["high"])
        w = (hi - lo) / bins
        b = np.clip(np.floor((s.to_numpy(float) - lo) / w), 0, bins - 1).astype(int)  # centres: exact
        a = lo + b * w
        if not c.get("integer", False):
            out[c["name"]] = a + rng.random(len(b)) * w
            continue
        first = np.ceil(a)
        last = np.where(b == bins - 1, np.floor(hi), np.ceil(a + w) - 1)  # last bin is closed
        count = (last - first + 1).astype(int)
        pick = first + np.floor(rng.random(len(b)) * np.maximum(count, 1))
        centre = np.clip(np.round(a + w / 2), math.ceil(lo), math.floor(hi))
        out[c["name"]] = np.where(count >= 1, pick, centre).astype(np.int64)
    return pd.DataFrame(out, columns=[c["name"] for c in cols])


def main(argv=None) -> int:
    a = parse_args(argv)
    cols = load_domain(a.domain)
    if a.synth == "aim" and a.max_rounds is not None and a.max_rounds < len(cols):
        # AIM first measures every 1-way marginal at 0.9/rounds of rho each: fewer rounds than columns
        # overspends and smartnoise then fails (sqrt of a negative budget, NaN probabilities).
        fail(f"--max-rounds must be >= the number of columns ({len(cols)}) for aim")
    if a.max_rounds is not None and a.synth == "mst":
        print("--max-rounds is ignored for mst", file=sys.stderr)
    try:
        train = pd.read_csv(a.train, dtype=str, keep_default_na=True)
    except (OSError, ValueError) as e:
        fail(f"cannot read --train {a.train}: {e}")
    if len(train) == 0:
        fail("--train has no rows")
    enc = encode_private(train, cols)

    np.random.seed(a.seed % 2**32)
    rng = np.random.default_rng(a.seed)
    from snsynth.aim import AIMSynthesizer
    from snsynth.mst import MSTSynthesizer

    tt = build_transformer(cols, a.bins)
    if a.synth == "mst":
        synth = MSTSynthesizer(epsilon=float(a.epsilon), delta=a.delta)
    else:
        synth = AIMSynthesizer(epsilon=float(a.epsilon), delta=a.delta, rounds=a.max_rounds)
    t0 = time.time()
    with contextlib.redirect_stdout(sys.stderr):  # smartnoise prints diagnostics to stdout
        synth.fit(enc, transformer=tt, preprocessor_eps=0.0)
    fit_s = time.time() - t0
    if synth._transformer is not tt or synth.epsilon != float(a.epsilon):
        raise RuntimeError("smartnoise replaced the transformer or spent budget on preprocessing")
    check_transformer(tt, cols, a.bins)  # still the declared domain, not refitted on private rows
    print(f"fit_seconds {fit_s:.1f} ({a.synth}, epsilon={a.epsilon}, delta={a.delta}, rows={len(enc)})", file=sys.stderr)

    with contextlib.redirect_stdout(sys.stderr):
        raw = synth.sample(a.n)
    out = decode(raw, cols, a.bins, rng)
    out.to_csv(a.out, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
