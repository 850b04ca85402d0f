"""``trustgen sample --uncertainty`` and ``trustgen score`` on tiny Bayesian VAE runs: what each
file holds, that uncertainty never changes the samples, that a streamed file equals the whole
batch, that out-of-distribution inputs are flagged, and that every refusal is exit code 2, one
stderr line and no file.

The runs are trained once per module (a few hundred steps on the CPU): digits with a Bayesian
decoder and label head (rows 0..1499; rows 1500.. are held out as real inputs to score), and
breast_cancer with a Bayesian decoder; plus two-step runs that have no posterior (a plain VAE,
a GAN, a diffusion model).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from trustgen.cli import main
from trustgen.data.datasets import load_breast_cancer, load_digits
from trustgen.data.encoders import ImageData
from trustgen.pipeline import train
from trustgen.run import Run
from trustgen.sampling.sampler import Sampler
from trustgen.training import TrainConfig
from trustgen.uncertainty import sample_uncertainty
from trustgen.uncertainty.posterior import with_uncertainty

HELD = 1500  # digits rows before this one train the run; the 297 after it are held out
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SCORE_COLUMNS = ["nll", "epistemic", "novelty", "p_value", "label", "label_confidence", "confident_but_novel"]


def _config(steps: int) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=64, device="cpu", progress=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("uruns")
    data, schema = load_digits()
    train(ImageData(data.x[:HELD], data.y[:HELD]), "vae", _config(300), schema=schema,
          model_options={"decoder_net": "bayes-mlp", "label_head": "bayes-mlp"}, out=d / "digits")
    train("breast_cancer", "vae", _config(200), model_options={"decoder_net": "bayes-mlp"}, out=d / "table")
    train("digits", "vae", _config(2), out=d / "plain")
    train("breast_cancer", "gan", _config(2), model_options={"hidden": 8}, out=d / "gan")
    train("digits", "diffusion", _config(2), model_options={"hidden": 8, "timesteps": 10}, out=d / "diffusion")
    return {name: d / name for name in ("digits", "table", "plain", "gan", "diffusion")}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    """Files to score: the held-out digits, the same inverted (x -> 16 - x: -x in the encoded
    [-1, 1] units, still inside the schema's [0, 16]), and 40 breast_cancer rows with and
    without their label column."""
    d = tmp_path_factory.mktemp("inputs")
    data, schema = load_digits()
    assert (schema.low, schema.high) == (0.0, 16.0)
    x, y = data.x[HELD:], data.y[HELD:]
    np.savez(d / "held.npz", x=x, y=y)
    np.savez(d / "inverted.npz", x=schema.high - x, y=y)
    df, _ = load_breast_cancer()
    df.head(40).to_csv(d / "rows.csv", index=False)
    df.head(40).drop(columns="diagnosis").to_csv(d / "rows_no_label.csv", index=False)
    return {"held": d / "held.npz", "inverted": d / "inverted.npz", "rows": d / "rows.csv",
            "rows_no_label": d / "rows_no_label.csv", "y_held": y, "classes": schema.classes}


def ok(capsys, argv) -> str:
    """Run ``argv``, which must succeed; its stdout."""
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def refused(capsys, argv, words, where) -> None:
    """``argv`` exits 2 with one ``trustgen: error:`` line on stderr holding ``words``, no
    traceback, and leaves the folder ``where`` (which holds the outputs) as it was."""
    before = sorted(p.name for p in where.iterdir())
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and words in err, err
    assert err.startswith("trustgen: error: ") and err.strip().count("\n") == 0 and "Traceback" not in err
    assert sorted(p.name for p in where.iterdir()) == before


def npz(path) -> dict:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


# ------------------------------------------------------------------------ sample --uncertainty
def test_npz_holds_the_samples_their_scores_and_maps(runs, tmp_path, capsys):
    out = tmp_path / "s.npz"
    ok(capsys, ["sample", runs["digits"], "-n", 40, "--seed", 3, "--uncertainty", 4, "--out", out])
    f = npz(out)
    assert sorted(f) == ["label_disagreement", "uncertainty", "uncertainty_map", "x", "y"]
    assert f["x"].shape == (40, 1, 8, 8) and f["y"].shape == (40,)
    assert f["uncertainty"].shape == (40,) and f["label_disagreement"].shape == (40,)
    assert f["uncertainty_map"].shape == (40, 1, 8, 8)
    for name in ("uncertainty", "label_disagreement", "uncertainty_map"):
        assert np.isfinite(f[name]).all() and (f[name] >= 0).all(), name
    np.testing.assert_allclose(f["uncertainty"], f["uncertainty_map"].reshape(40, -1).mean(1), rtol=1e-5, atol=0)
    assert (f["label_disagreement"] <= 1).all()
    # a posterior with width: every sample has a spread, and not the same one
    assert (f["uncertainty"] > 0).all() and np.ptp(f["uncertainty"]) > 0


def test_the_same_seed_gives_the_same_file_and_uncertainty_leaves_the_samples_alone(runs, tmp_path, capsys):
    base = ["sample", runs["digits"], "-n", 60, "--seed", 3]
    ok(capsys, [*base, "--uncertainty", 4, "--out", tmp_path / "a.npz"])
    ok(capsys, [*base, "--uncertainty", 4, "--out", tmp_path / "b.npz"])
    ok(capsys, [*base, "--out", tmp_path / "plain.npz"])
    ok(capsys, ["sample", runs["digits"], "-n", 60, "--seed", 4, "--uncertainty", 4, "--out", tmp_path / "c.npz"])
    a, b, plain, c = (npz(tmp_path / f"{n}.npz") for n in ("a", "b", "plain", "c"))
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert sorted(plain) == ["x", "y"]
    np.testing.assert_array_equal(a["x"], plain["x"])
    np.testing.assert_array_equal(a["y"], plain["y"])
    assert not np.array_equal(a["uncertainty"], c["uncertainty"])  # the seed is used


def test_csv_appends_an_uncertainty_column_and_keeps_the_rows(runs, tmp_path, capsys):
    schema = Run.load(runs["table"]).schema
    base = ["sample", runs["table"], "-n", 80, "--seed", 2]
    ok(capsys, [*base, "--uncertainty", 3, "--out", tmp_path / "u.csv"])
    ok(capsys, [*base, "--uncertainty", 3, "--out", tmp_path / "u2.csv"])
    ok(capsys, [*base, "--out", tmp_path / "plain.csv"])
    assert (tmp_path / "u.csv").read_bytes() == (tmp_path / "u2.csv").read_bytes()
    u, plain = pd.read_csv(tmp_path / "u.csv"), pd.read_csv(tmp_path / "plain.csv")
    # no label head on this run: no label_disagreement column
    assert list(u.columns) == [c.name for c in schema.columns] + ["uncertainty"]
    assert len(u) == 80 and np.isfinite(u.uncertainty).all() and (u.uncertainty >= 0).all()
    assert np.ptp(u.uncertainty) > 0
    pd.testing.assert_frame_equal(u.drop(columns="uncertainty"), plain)


def test_a_png_of_images_shows_each_sample_above_its_map(runs, tmp_path, capsys, png_images):
    out = tmp_path / "maps.png"
    ok(capsys, ["sample", runs["digits"], "-n", 12, "--seed", 1, "--uncertainty", 3, "--out", out])
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert png_images["n"] == 24


def test_a_png_of_table_samples_with_uncertainty(runs, tmp_path, capsys):
    out = tmp_path / "hist.png"
    ok(capsys, ["sample", runs["table"], "-n", 50, "--seed", 1, "--uncertainty", 3, "--out", out])
    assert out.read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize("run_name, suffix", [("digits", "npz"), ("table", "csv")])
def test_a_streamed_file_has_the_uncertainty_of_the_whole_batch(runs, tmp_path, capsys, run_name, suffix):
    """The command samples in generation batches of 1,000: 1,100 samples take two, and each
    must see the same weight draws (those of --seed) as the whole batch computed at once."""
    n, seed, draws = 1100, 5, 3
    run = Run.load(runs[run_name])
    assert Sampler(run).batch_size < n
    out = tmp_path / f"big.{suffix}"
    ok(capsys, ["sample", runs[run_name], "-n", n, "--seed", seed, "--uncertainty", draws, "--out", out])
    whole = Sampler(run).sample(n, seed=seed)
    want = sample_uncertainty(run.model, whole.noise, whole.labels, draws=draws, seed=seed)
    if suffix == "npz":
        got = npz(out)
        np.testing.assert_array_equal(got["x"], whole.data.x.astype(np.float32))
        np.testing.assert_allclose(got["uncertainty"], want.score, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(got["uncertainty_map"], want.map, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(got["label_disagreement"], want.label_disagreement, rtol=1e-6, atol=1e-9)
    else:
        got = pd.read_csv(out)
        pd.testing.assert_frame_equal(got.drop(columns="uncertainty"), whole.data, check_exact=False, rtol=1e-12)
        np.testing.assert_allclose(got["uncertainty"].to_numpy(), want.score, rtol=1e-6, atol=1e-9)


def test_with_uncertainty_on_a_stream_of_small_batches_equals_the_whole_batch(runs):
    """Each batch of 7 gets the draws of the seed, as the 50 samples do in one pass (the same
    samples: ``sample`` of the same sampler; float noise of another batch size aside)."""
    run = Run.load(runs["digits"])
    sampler = Sampler(run, batch_size=7)
    parts = [with_uncertainty(b, run.model, draws=4, seed=9) for b in sampler.stream(50, seed=2)]
    assert len(parts) == 8
    whole = with_uncertainty(sampler.sample(50, seed=2), run.model, draws=4, seed=9)
    np.testing.assert_array_equal(np.concatenate([p.data.x for p in parts]), whole.data.x)
    for name in ("uncertainty", "label_disagreement", "uncertainty_map"):
        np.testing.assert_allclose(np.concatenate([getattr(p, name) for p in parts]), getattr(whole, name),
                                   rtol=1e-4, atol=1e-6, err_msg=name)  # batch-size float error (2 threads)
    other = with_uncertainty(sampler.sample(50, seed=2), run.model, draws=4, seed=10)
    assert not np.allclose(other.uncertainty, whole.uncertainty)


@pytest.mark.parametrize("run_name, words", [
    ("plain", "this run has no Bayesian layers"),
    ("gan", "posterior uncertainty is built for the VAE; this run is a gan"),
    ("diffusion", "posterior uncertainty is built for the VAE; this run is a diffusion"),
])
def test_uncertainty_needs_a_bayesian_vae(runs, tmp_path, capsys, run_name, words):
    suffix = "csv" if run_name == "gan" else "npz"  # the GAN is a table run
    refused(capsys, ["sample", runs[run_name], "-n", 5, "--seed", 0, "--uncertainty", 3,
                     "--out", tmp_path / f"s.{suffix}"], words, tmp_path)


@pytest.mark.parametrize("draws", ["1", "0", "1025", "-3", "two"])
def test_draws_outside_2_to_1024_are_refused(runs, tmp_path, capsys, draws):
    refused(capsys, ["sample", runs["digits"], "-n", 5, "--uncertainty", draws, "--out", tmp_path / "s.npz"],
            "argument --uncertainty", tmp_path)


@pytest.mark.parametrize("run_name, real", [("table", "breast_cancer"), ("digits", "digits")])
def test_uncertainty_and_real_are_one_figure_or_the_other(runs, tmp_path, capsys, run_name, real):
    refused(capsys, ["sample", runs[run_name], "-n", 5, "--uncertainty", 3, "--real", real,
                     "--out", tmp_path / "s.png"], "--real and --uncertainty", tmp_path)


# ------------------------------------------------------------------------------------- score
def _score(runs, inputs, name, out, *extra, draws=4, reference=200, seed=0):
    return ["score", runs["digits"], "--input", inputs[name], "--out", out, "--draws", draws,
            "--reference", reference, "--seed", seed, *extra]


def test_score_writes_a_row_per_input(runs, inputs, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    said = ok(capsys, _score(runs, inputs, "held", out, "--json"))
    assert said.count("\n") == 1
    report = json.loads(said)
    s = pd.read_csv(out, dtype={"label": str})
    n = len(inputs["y_held"])
    assert list(s.columns) == SCORE_COLUMNS and len(s) == n
    assert {"out", "n", "novel_at_1pct"} <= set(report)
    assert report["out"] == str(out) and report["n"] == n
    assert report["novel_at_1pct"] == int((s.p_value < 0.01).sum())
    assert s[["nll", "epistemic", "novelty", "p_value", "label_confidence"]].notna().all().all()
    # a permutation p-value: at least 1 / (reference + 1) (written in float32: to 1e-7)
    assert ((s.p_value > 0) & (s.p_value <= 1)).all() and (s.p_value >= (1 - 1e-6) / 201).all()
    assert (s.epistemic >= 0).all()
    assert set(s.label) <= set(inputs["classes"])
    assert ((s.label_confidence > 0) & (s.label_confidence <= 1)).all()
    assert s.confident_but_novel.dtype == bool
    assert (s.confident_but_novel == ((s.label_confidence >= 0.9) & (s.p_value < 0.01))).all()
    # the head's labels are class names in the right order: far better than chance on held-out digits
    truth = np.array([inputs["classes"][i] for i in inputs["y_held"]])
    assert (s.label.to_numpy() == truth).mean() > 0.6


def test_the_same_seed_gives_the_same_scores(runs, inputs, tmp_path, capsys):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        ok(capsys, _score(runs, inputs, "held", tmp_path / f"{name}.csv", seed=seed))
    a, b, c = ((tmp_path / f"{n}.csv").read_bytes() for n in "abc")
    assert a == b and a != c


def test_inverted_digits_are_novel_and_real_ones_less_so(runs, inputs, tmp_path, capsys):
    """Seed 0, 4 draws, 200 reference samples (the smallest p-value is 1/201)."""
    ok(capsys, _score(runs, inputs, "held", tmp_path / "real.csv", seed=0))
    ok(capsys, _score(runs, inputs, "inverted", tmp_path / "ood.csv", "--figure", tmp_path / "f.png", seed=0))
    real, ood = pd.read_csv(tmp_path / "real.csv"), pd.read_csv(tmp_path / "ood.csv")
    assert ood.novelty.mean() > real.novelty.mean() + 10
    assert ood.nll.mean() > real.nll.mean()
    assert (ood.p_value < 0.01).mean() > 0.9
    assert (tmp_path / "f.png").read_bytes()[:8] == PNG_MAGIC


def test_an_inputs_scores_do_not_depend_on_the_other_rows_of_the_file(runs, inputs, tmp_path, capsys):
    with np.load(inputs["held"]) as f:
        x, y = f["x"][:20], f["y"][:20]
    np.savez(tmp_path / "forward.npz", x=x, y=y)
    np.savez(tmp_path / "reversed.npz", x=x[::-1], y=y[::-1])
    for name in ("forward", "reversed"):
        ok(capsys, ["score", runs["digits"], "--input", tmp_path / f"{name}.npz", "--out", tmp_path / f"{name}.csv",
                    "--draws", 4, "--reference", 100, "--seed", 0])
    forward = pd.read_csv(tmp_path / "forward.csv")
    backward = pd.read_csv(tmp_path / "reversed.csv").iloc[::-1].reset_index(drop=True)
    for col in ("nll", "epistemic", "novelty"):
        np.testing.assert_allclose(backward[col], forward[col], rtol=1e-4, atol=1e-6, err_msg=col)


def test_the_models_own_samples_are_seldom_novel(runs, inputs, tmp_path, capsys):
    """Samples of the model are exchangeable with its reference: p-values about uniform."""
    own = tmp_path / "own.npz"
    ok(capsys, ["sample", runs["digits"], "-n", 200, "--seed", 11, "--out", own])
    ok(capsys, ["score", runs["digits"], "--input", own, "--out", tmp_path / "s.csv", "--draws", 4,
                "--reference", 200, "--seed", 0])
    s = pd.read_csv(tmp_path / "s.csv")
    assert (s.p_value < 0.01).mean() <= 0.05 and (s.p_value < 0.5).mean() < 0.75
    assert s.novelty.mean() < 2


def test_a_table_run_scores_csv_rows(runs, inputs, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    report = json.loads(ok(capsys, ["score", runs["table"], "--input", inputs["rows"], "--out", out, "--draws", 3,
                                    "--reference", 100, "--seed", 0, "--json"]))
    s = pd.read_csv(out, dtype={"label": str})
    assert list(s.columns) == SCORE_COLUMNS and len(s) == 40 and report["n"] == 40
    assert report["label_source"] == "generative"  # no label head: p(y | x) from the model itself
    assert set(s.label) <= set(Run.load(runs["table"]).schema.classes)
    assert ((s.p_value > 0) & (s.p_value <= 1)).all()


def test_a_table_without_its_label_column_is_scored_or_cleanly_refused(runs, inputs, tmp_path, capsys):
    """`score --input` says the label column may be left out: the rows are scored (the label
    is predicted, never read), and the scores equal those of the same rows with their labels."""
    out = tmp_path / "scores.csv"
    code = main([str(a) for a in ["score", runs["table"], "--input", inputs["rows_no_label"], "--out", out,
                                  "--draws", 3, "--reference", 100, "--seed", 0]])
    capsys.readouterr()
    assert code == 0
    s = pd.read_csv(out)
    assert list(s.columns) == SCORE_COLUMNS and len(s) == 40
    with_labels = tmp_path / "with.csv"
    ok(capsys, ["score", runs["table"], "--input", inputs["rows"], "--out", with_labels, "--draws", 3,
                "--reference", 100, "--seed", 0])
    pd.testing.assert_frame_equal(s, pd.read_csv(with_labels))


def test_score_never_overwrites_its_input(runs, inputs, tmp_path, capsys):
    rows = tmp_path / "rows.csv"
    rows.write_bytes(inputs["rows"].read_bytes())
    refused(capsys, ["score", runs["table"], "--input", rows, "--out", rows], "is the command's input", tmp_path)
    assert rows.read_bytes() == inputs["rows"].read_bytes()


@pytest.mark.parametrize("case", ["out_not_csv", "figure_not_png", "plain_run", "gan_run", "out_in_run",
                                  "figure_in_run", "wrong_shape", "outside_range", "table_for_images",
                                  "draws_1", "reference_99"])
def test_score_refusals(runs, inputs, tmp_path, capsys, case):
    where = tmp_path / "outputs"
    where.mkdir()
    out, figure, run = where / "scores.csv", [], runs["digits"]
    source, extra, words = inputs["held"], [], None
    if case == "out_not_csv":
        out, words = where / "scores.txt", "--out must be a .csv file"
    elif case == "figure_not_png":
        figure, words = ["--figure", where / "f.jpg"], "--figure must be a .png file"
    elif case == "plain_run":
        run, words = runs["plain"], "this run has no Bayesian layers"
    elif case == "gan_run":
        run, source, words = runs["gan"], inputs["rows"], "this run is a gan"
    elif case == "out_in_run":
        where, words = runs["digits"], "is inside the run directory"
        out = where / "scores.csv"
    elif case == "figure_in_run":
        figure, words = ["--figure", runs["digits"] / "f.png"], "is inside the run directory"
    elif case == "wrong_shape":
        source, words = tmp_path / "small.npz", "images have shape (1, 4, 4)"
        np.savez(source, x=np.zeros((5, 1, 4, 4)), y=np.zeros(5, dtype=np.int64))
    elif case == "outside_range":
        source, words = tmp_path / "bright.npz", "outside the declared range"
        np.savez(source, x=np.full((5, 1, 8, 8), 17.0), y=np.zeros(5, dtype=np.int64))
    elif case == "table_for_images":
        source, words = inputs["rows"], "the schema is for image data"
    elif case == "draws_1":
        extra, words = ["--draws", 1], "argument --draws"
    elif case == "reference_99":
        extra, words = ["--reference", 99], "argument --reference"
    run_files = sorted(p.name for p in runs["digits"].iterdir())
    refused(capsys, ["score", run, "--input", source, "--out", out, *figure, "--draws", 2, "--reference", 100,
                     *extra], words, where)
    assert sorted(p.name for p in runs["digits"].iterdir()) == run_files


def test_a_single_row_can_be_scored(runs, inputs, tmp_path, capsys):
    one = tmp_path / "one.csv"
    pd.read_csv(inputs["rows"]).iloc[:1].to_csv(one, index=False)
    out = tmp_path / "s.csv"
    ok(capsys, ["score", runs["table"], "--input", one, "--out", out, "--draws", 2, "--reference", 100])
    assert len(pd.read_csv(out)) == 1
