"""DP domains (trustgen.privacy.dp_domains): mechanism correctness, privacy, the schema record,
training on a DP schema, and the `schema infer --epsilon` command."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from trustgen.cli import main
from trustgen.data.encoders import fit_to_domain
from trustgen.data.schema import (
    CategoricalColumn, DomainSpend, NumericColumn, TabularSchema, load_schema, save_schema, schema_from_dict,
)
from trustgen.errors import DataError, PrivacyError, SchemaError
from trustgen.privacy import dp_domains
from trustgen.privacy.dp_domains import (
    DEFAULT_GRID, FALSE_KEEP, infer_dp_schema, keep_threshold, pick, quantile_probabilities, thresholded_counts,
)
from trustgen.privacy.secure_random import SecureRandom, key_from_seed


# ------------------------------------------------------------------ (a) mechanism correctness
def test_quantile_probabilities_equal_the_closed_form():
    x, grid, q, eps = np.array([3.0, 1.0, 2.0]), [0.0, 1.5, 2.5, 4.0], 0.5, 1.0
    # ranks #{x <= c} = 0, 1, 2, 3; target q n = 1.5; utilities -1.5, -0.5, -0.5, -1.5
    w = [math.exp(eps * u / 2) for u in (-1.5, -0.5, -0.5, -1.5)]
    assert quantile_probabilities(x, grid, q, eps) == pytest.approx([v / sum(w) for v in w], rel=1e-12)


def test_a_point_mass_at_the_minimum_gives_the_minimum_as_the_low_bound():
    """A 0/1 column, half zeros: the low (1%) quantile's candidates in [0, 1) all had
    #{x <= c} = n/2, so the low bound fell anywhere in [0, 1) (0.66-0.81 in three runs, a
    fuzzer's find). Counting #{x < c} for a low quantile puts nearly all of it on 0."""
    x = np.concatenate([np.zeros(1000), np.ones(1000)])
    grid = np.linspace(0.0, 1.0, 101)
    assert quantile_probabilities(x, grid, 0.01, 1.0)[0] > 0.99
    assert quantile_probabilities(-x, -grid[::-1], 0.99, 1.0)[-1] > 0.99  # the same at the top, as before


def test_pick_inverts_the_cumulative_distribution():
    p = np.array([0.2, 0.5, 0.3])
    assert [pick(p, u) for u in (1e-9, 0.19, 0.21, 0.69, 0.71, 1 - 1e-9)] == [0, 0, 1, 1, 2, 2]


def test_sampled_quantile_picks_follow_the_probabilities():
    """Seed 0; chi-square at level 1e-3: a fresh seed would fail with probability 0.001."""
    p = quantile_probabilities(np.arange(10.0), np.linspace(-1, 10, 8), 0.3, 1.0)
    u = SecureRandom(key_from_seed(0)).uniform(20_000, "test", 0).numpy()
    counts = np.bincount([pick(p, v) for v in u], minlength=len(p))
    assert stats.chisquare(counts, 20_000 * p).pvalue > 1e-3


def test_bounds_land_near_the_true_quantiles():
    """20,000 standard normal rows (data seed 0), noise seed 1, epsilon 2 per column: a rank error
    of 100 (0.5%) has probability below 2603 * exp(-0.5 * 1 * 100) ~ 5e-19 per bound, so this
    fails falsely with negligible probability; the grid step (2.3%) is the rest of the slack."""
    x = np.random.default_rng(0).normal(size=20_000)
    col = infer_dp_schema(pd.DataFrame({"x": x}), 2.0, secret_seed=1).column("x")
    lo, hi = np.quantile(x, [0.005, 0.02]), np.quantile(x, [0.98, 0.995])
    assert 1.03 * lo[0] <= col.low <= 0.97 * lo[1] and 0.97 * hi[0] <= col.high <= 1.03 * hi[1]


@pytest.mark.parametrize("index, bounds", [(50, (5.0, 6.0)), (100, (10.0, 11.0))])
def test_equal_picks_widen_by_one_grid_step_and_integers_round_outward(monkeypatch, index, bounds):
    monkeypatch.setattr(dp_domains, "pick", lambda p, u: index)  # both quantiles pick the same candidate
    s = infer_dp_schema(pd.DataFrame({"n": [5, 6]}), 1.0, ranges={"n": (0.5, 10.5)}, integer=["n"], secret_seed=0)
    assert (s.column("n").low, s.column("n").high) == bounds  # grid 0.5, 0.6, ...: (5.5, 5.6) or (10.4, 10.5)
    monkeypatch.undo()
    real = infer_dp_schema(pd.DataFrame({"n": [5, 6]}), 1.0, ranges={"n": (0.5, 10.5)}, secret_seed=0).column("n")
    assert real.low < real.high and not real.integer


def test_thresholded_counts_without_noise_keep_exactly_those_above_the_threshold():
    eps, cands = 1.0, ["a", "b", "c", "d"]
    t = keep_threshold(4, eps)  # ln(4 / 0.1) = 3.69
    keys = ["a"] * 4 + ["b"] * 3 + ["zz"] * 50  # "zz" is not a candidate: never counted
    assert thresholded_counts(keys, cands, eps, np.full(4, 0.5)) == [0, 1]  # u = 0.5: zero noise; 4 > t > 3
    assert 3 < t < 4


def test_thresholded_counts_keep_frequent_and_drop_absent_candidates():
    """2,000 noise draws (seed 0): 'a' (500 rows) and 'b' (300) are kept every time (a miss
    needs noise below -296 at scale 1: probability e^-296); each absent candidate is kept with
    probability FALSE_KEEP / 4 = 1.25%, so 4,000 chances give Binomial(4000, 0.0125): the
    interval [25, 80] fails falsely with probability about 3e-4."""
    rng = SecureRandom(key_from_seed(0))
    keys = ["a"] * 500 + ["b"] * 300
    kept = [thresholded_counts(keys, ["a", "b", "c", "d"], 1.0, rng.uniform(4, "t", s).numpy()) for s in range(2000)]
    assert all(k[:2] == [0, 1] for k in kept)
    false = sum(len(k) - 2 for k in kept)
    assert 25 <= false <= 80 and stats.binom(4000, FALSE_KEEP / 4).sf(80) < 1e-3


def test_fewer_than_two_kept_falls_back_to_the_two_largest_noisy_counts():
    assert thresholded_counts(["b"] * 2, ["a", "b", "c"], 0.01, np.array([0.5, 0.5, 0.6])) == [1, 2]


# ------------------------------------------------------------------ (b) privacy
NEIGHBOURS = [(np.array([0.3, 1.2, 1.9, 2.5, 2.6, 4.0, 5.5]), v) for v in (-5.0, 0.0, 2.55, 3.0, 9.0)]


@pytest.mark.parametrize("q", [0.01, 0.5, 0.99])
def test_exponential_mechanism_ratio_is_at_most_e_to_the_epsilon(q):
    """Exact: every output's probability on D and on D + one row, over a small grid."""
    grid, eps = np.linspace(-1, 6, 9), 0.7

    def worst(e):
        return max(np.abs(np.log(quantile_probabilities(d, grid, q, e))
                          - np.log(quantile_probabilities(np.append(d, v), grid, q, e))).max() for d, v in NEIGHBOURS)

    assert eps / 4 < worst(eps) <= eps + 1e-12
    assert worst(4 * eps) > eps  # the check has power: a mechanism spending 4x the budget fails it


def _keep_pattern_probability(counts, kept, eps, t):
    """P(exactly ``kept`` pass the threshold): each count + Laplace(1/eps) > t independently."""
    def p_keep(c):
        z = (t - c) * eps
        return 0.5 * math.exp(-z) if z >= 0 else 1 - 0.5 * math.exp(z)
    return math.prod(p_keep(c) if k else 1 - p_keep(c) for c, k in zip(counts, kept))


def test_thresholded_counts_ratio_is_at_most_e_to_the_epsilon():
    """Exact over every keep pattern of three candidates; one added row raises one count by 1."""
    import itertools

    eps, counts = 0.8, [0, 2, 5]
    t = keep_threshold(3, eps)
    worst = 0.0
    for j in range(3):
        more = [c + (i == j) for i, c in enumerate(counts)]
        for kept in itertools.product([0, 1], repeat=3):
            a, b = (_keep_pattern_probability(c, kept, eps, t) for c in (counts, more))
            worst = max(worst, abs(math.log(a / b)))
    assert eps / 2 < worst <= eps + 1e-12  # close to the bound, never above it


# ------------------------------------------------------------------ (c) the schema record
def _table(n=400, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"age": rng.integers(18, 90, n), "bp": rng.normal(120, 12, n),
                         "sex": rng.choice(["f", "m"], n), "y": rng.choice(["no", "yes"], n)})


def test_schema_records_the_spend_and_round_trips(tmp_path):
    s = infer_dp_schema(_table(), 2.0, categories={"sex": ["f", "m", "x"], "y": ["no", "yes"]}, label="y",
                        integer=["age"], ranges={"age": (0, 120)}, secret_seed=0)
    assert s.source == "dp" and s.dp.epsilon == 2.0 and s.dp.fixed_seed
    shares = {m["column"]: m["epsilon"] for m in s.dp.mechanisms}
    assert shares == {"age": 0.5, "bp": 0.5, "sex": 0.5, "y": 0.5}
    assert s.dp.mechanisms[0]["grid"] == [0, 120, 101] and s.dp.mechanisms[1]["grid"] == "default"
    save_schema(s, tmp_path / "s.json")
    assert json.loads((tmp_path / "s.json").read_text())["dp"]["epsilon"] == 2.0
    assert load_schema(tmp_path / "s.json") == s


def test_old_schema_files_still_load_and_keep_their_form():
    old = {"kind": "tabular", "label": None, "columns": [{"name": "a", "low": 0, "high": 1, "type": "numeric"}]}
    s = schema_from_dict(old)
    assert s.source == "declared" and s.dp is None and "dp" not in s.to_dict()


@pytest.mark.parametrize("change, words", [
    (lambda d: d.update(source="dp"), "if and only if"),
    (lambda d: d.update(source="guessed"), "unknown schema source"),
    (lambda d: d.update(dp={"epsilon": 1.0, "mechanisms": []}), "if and only if"),
    (lambda d: d.update(source="dp", dp={"epsilon": 0.5, "mechanisms": [
        {"column": "a", "mechanism": "exponential-quantiles", "epsilon": 0.6}]}), "more than its recorded"),
    (lambda d: d.update(source="dp", dp={"epsilon": "x"}), "finite number > 0"),
])
def test_inconsistent_dp_records_are_refused(change, words):
    d = {"kind": "tabular", "label": None, "columns": [{"name": "a", "low": 0, "high": 1, "type": "numeric"}]}
    change(d)
    with pytest.raises(SchemaError, match=words):
        schema_from_dict(d)


def test_fit_to_domain_clips_numbers_and_drops_unkept_categories():
    s = TabularSchema([NumericColumn("x", 0.0, 1.0), CategoricalColumn("c", ("a", "b"))], source="dp",
                      dp=DomainSpend(1.0))
    out = fit_to_domain(pd.DataFrame({"x": [-3.0, 0.5, 7.0, 0.2], "c": ["a", "b", "a", "rare"]}), s)
    assert out["x"].tolist() == [0.0, 0.5, 1.0] and out["c"].tolist() == ["a", "b", "a"]
    declared = TabularSchema([NumericColumn("x", 0.0, 1.0)])
    df = pd.DataFrame({"x": [7.0]})
    assert fit_to_domain(df, declared) is df  # a declared schema's domain is never bent to fit


def _no_randomness(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the budget was touched before the input was checked")
    monkeypatch.setattr(dp_domains, "SecureRandom", refuse)


@pytest.mark.parametrize("df, kwargs, error, words", [
    (_table(), {"label": "y", "categories": {"y": ["no", "yes"]}}, PrivacyError, "'sex' holds text"),
    (_table(), {"label": "y"}, PrivacyError, "--categories y="),
    (_table().assign(bp=np.nan), {"categories": {"sex": ["f", "m"], "y": ["no", "yes"]}}, DataError, "NaN/inf"),
    (_table().assign(bp=np.inf), {"categories": {"sex": ["f", "m"], "y": ["no", "yes"]}}, DataError, "NaN/inf"),
    (_table().assign(bp=0.5), {"categories": {"sex": ["f", "m"], "y": ["no", "yes"]}, "integer": ["bp"]},
     DataError, "fractions"),
    (_table().iloc[:0], {"categories": {"sex": ["f", "m"], "y": ["no", "yes"]}}, DataError, "empty"),
])
def test_bad_input_is_refused_before_any_noise_is_drawn(monkeypatch, df, kwargs, error, words):
    _no_randomness(monkeypatch)
    with pytest.raises(error, match=words):
        infer_dp_schema(df, 1.0, **kwargs)


def test_default_grid_is_public_and_symmetric():
    g = np.array(DEFAULT_GRID)
    assert np.all(np.diff(g) > 0) and 0.0 in DEFAULT_GRID and np.array_equal(g, -g[::-1])
    assert g[-1] == 1e9 and g[len(g) // 2 + 1] == 1e-4


# ------------------------------------------------------------------ (d) training on a DP schema
def test_a_dp_run_on_a_dp_schema_reports_the_total(tmp_path, capsys):
    from trustgen.pipeline import train
    from trustgen.training import TrainConfig

    df = _table()
    schema = infer_dp_schema(df, 1.5, categories={"sex": ["f", "m"], "y": ["no", "yes"]}, label="y",
                             ranges={"age": (0, 120), "bp": (0, 300)}, integer=["age"], secret_seed=0)
    save_schema(schema, tmp_path / "s.json")
    df.to_csv(tmp_path / "d.csv", index=False)
    assert main(["train", "--data", str(tmp_path / "d.csv"), "--schema", str(tmp_path / "s.json"), "--model",
                 "vae", "--steps", "3", "--batch-size", "32", "--epsilon", "3", "--option", "hidden=8",
                 "--no-progress", "--out", str(tmp_path / "run")]) == 0
    assert "(training " in capsys.readouterr().out
    from trustgen.run import Run

    r = Run.load(tmp_path / "run").privacy
    assert r.preprocessing_epsilon == 1.5 and r.total_epsilon == r.epsilon + 1.5 and r.epsilon <= 3.0
    text = r.summary()
    assert "Guarantee: NONE" not in text and f"({r.total_epsilon:.4g}, " in text and "preprocessing epsilon 1.5" in text
    assert any("pure epsilon-DP" in c and "fixed seed" in c for c in r.caveats)
    plain = train(df, "vae", TrainConfig(steps=2, batch_size=32, progress=False), schema=schema,
                  model_options={"hidden": 8})  # a non-private run on a DP schema is fine
    assert not plain.privacy.is_private and plain.privacy.preprocessing_epsilon == 0.0


# ------------------------------------------------------------------ (e) the command
def _csv(tmp_path):
    _table(50).to_csv(tmp_path / "d.csv", index=False)
    return str(tmp_path / "d.csv")


def test_cli_writes_a_dp_schema(tmp_path, capsys):
    out = tmp_path / "s.json"
    vocab = tmp_path / "v.json"
    vocab.write_text(json.dumps({"sex": ["f", "m", "x"]}))
    assert main(["schema", "infer", _csv(tmp_path), "--epsilon", "2", "--categories", "y=no,yes", "--vocabulary",
                 str(vocab), "--label", "y", "--range", "age=0:120", "--integer", "age", "--out", str(out)]) == 0
    s = load_schema(out)
    assert s.source == "dp" and s.dp.epsilon == 2.0 and not s.dp.fixed_seed and s.label == "y"
    assert "pure epsilon-DP" in capsys.readouterr().err


@pytest.mark.parametrize("extra, words", [
    (["--epsilon", "1", "--label", "y", "--categories", "sex=f,m"], "--categories y="),
    (["--epsilon", "1", "--categories", "y=no,yes"], "--categories sex="),
    (["--epsilon", "0"], "--epsilon: must be in (0, "),
    (["--epsilon", "-1"], "--epsilon: must be in (0, "),
    (["--epsilon", "nan"], "--epsilon: must be in (0, "),
    (["--epsilon", "inf"], "--epsilon: must be in (0, "),
    (["--epsilon", "1", "--range", "age=5"], "COL=LOW:HIGH"),
    (["--epsilon", "1", "--range", "age=a:b"], "COL=LOW:HIGH"),
    (["--epsilon", "1", "--range", "age=9:1"], "low < high"),
    (["--epsilon", "1", "--range", "nope=0:1"], "does not have"),
    (["--epsilon", "1", "--categories", "sex"], "COL=A,B"),
    (["--epsilon", "1", "--categories", "=a,b"], "COL=A,B"),
    (["--epsilon", "1", "--categories", "sex=f"], "at least 2 distinct"),
    (["--epsilon", "1", "--categories", "sex=f,f"], "at least 2 distinct"),
    (["--epsilon", "1", "--categories", "sex=f,m", "--categories", "sex=f,m"], "twice"),
    (["--categories", "sex=f,m"], "need --epsilon"),
])
def test_cli_bad_dp_requests_exit_2_with_one_line_and_no_file(tmp_path, capsys, extra, words):
    out = tmp_path / "s.json"
    assert main(["schema", "infer", _csv(tmp_path), *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert words in err and err.strip().count("\n") == 0 and not out.exists()
