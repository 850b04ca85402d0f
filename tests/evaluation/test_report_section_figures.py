"""The report's section figures: distance to closest record, the membership attack's ROC curve,
fairness and diversity. Each is written and referenced in the HTML when its section has data,
absent when it has none, readable at the page's 1280 px, and draws the section's own numbers
(checked on the matplotlib Figure the plotting function returns, not on pixels). The utility bars,
the marginals and the fairness figure are also checked to fit their slot, with legends that cover
no bar or label."""

from __future__ import annotations

import io
import re
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text

import trustgen.evaluation.report_diversity as report_diversity
import trustgen.evaluation.report_privacy_attacks as report_privacy_attacks
from trustgen.data.encoders import ImageData
from trustgen.data.schema import ImageSchema
from trustgen.errors import DataError
from trustgen.evaluation.report import evaluate
from trustgen.evaluation.report_diversity import diversity_section
from trustgen.evaluation.report_fairness import fairness_section
from trustgen.evaluation.report_figures import (
    dcr_figure, diversity_figure, fairness_figure, membership_roc_figure,
)
from trustgen.evaluation.report_inputs import EvaluationInputs
from trustgen.evaluation.report_privacy_attacks import privacy_attacks_section
from trustgen.evaluation.report_utility import utility_section
from trustgen.pipeline import train
from trustgen.plots import DPI, group_share_bars, marginals, utility_bars
from trustgen.training import TrainConfig
from tests.evaluation.conftest import SMALL_SCHEMA, small_table

SECTION_FIGURES = ("dcr.png", "membership_roc.png", "fairness.png", "diversity.png")
HALF_INCHES, FULL_INCHES = 4.8, 9.7  # what a 1280 px page shows unshrunk at 110 dpi (about 520 / 1068 px)


@pytest.fixture(autouse=True)
def _close_figures():
    """The figures a test draws are closed after it (pyplot keeps them open otherwise)."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture(scope="module")
def tiny_run():
    """A run trained for a few steps on :func:`small_table` (the report needs a run, not a good one)."""
    return train(small_table(100, 0), "vae", TrainConfig(steps=8, batch_size=32, progress=False),
                 schema=SMALL_SCHEMA, model_options={"hidden": 16})


@pytest.fixture(scope="module")
def full_report(tiny_run, tmp_path_factory) -> tuple[Path, dict]:
    """The report with a holdout and the sensitive column ``g``: every section figure has data."""
    out = tmp_path_factory.mktemp("full")
    report = evaluate(tiny_run, small_table(120, 2), real=small_table(100, 0), holdout=small_table(60, 1),
                      sensitive="g", out=out)
    return out, report


@pytest.fixture(scope="module")
def image_inputs() -> EvaluationInputs:
    rng = np.random.default_rng(0)
    schema = ImageSchema(1, 8, 8, 0.0, 16.0, classes=tuple(str(i) for i in range(3)))

    def images(n: int) -> ImageData:
        y = np.arange(n) % 3
        return ImageData((rng.uniform(0, 4, (n, 1, 8, 8)) + 4 * y[:, None, None, None]).astype(np.float32), y)
    return EvaluationInputs.from_data(schema, images(60), images(60), images(40), seed=0)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path.name} is not a PNG"
    return struct.unpack(">II", data[16:24])


def _html_images(out: Path) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', (out / "report.html").read_text())


def _drawn_ticklabels(axis) -> list[Text]:
    """The axis' tick labels that are drawn: visible, not empty and within its view limits (a
    locator may place ticks beyond them, which are not drawn)."""
    lo, hi = sorted(axis.get_view_interval())
    slack = 1e-9 * max(1.0, abs(hi - lo))
    return [t for t, loc in zip(axis.get_ticklabels(), axis.get_ticklocs())
            if t.get_visible() and t.get_text() and lo - slack <= loc <= hi + slack]


def _assert_readable(fig, max_inches: float, *, labelled: bool = True) -> None:
    """Every text at least 8 pt; tick labels side by side, or slanted far enough apart, never on
    top of each other; the figure no wider than the page shows it unshrunk."""
    assert fig.get_size_inches()[0] <= max_inches, fig.get_size_inches()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    small = [(t.get_text(), t.get_fontsize()) for t in texts if t.get_fontsize() < 8]
    assert not small, small
    for ax in fig.axes:
        assert ax.get_title(), "every panel is titled"
        if labelled:
            assert ax.get_xlabel() and ax.get_ylabel(), "every axis is labelled"
        labels = _drawn_ticklabels(ax.xaxis)
        boxes = [t.get_window_extent(renderer) for t in labels]
        for a, b, ta in zip(boxes, boxes[1:], labels):
            angle = np.deg2rad(ta.get_rotation())
            if angle == 0:
                assert a.x1 <= b.x0, f"tick labels {ta.get_text()!r} and the next overlap"
            else:  # slanted labels are parallel strips: their spacing across the slant must exceed a line
                line = ta.get_fontsize() * fig.dpi / 72
                assert (b.x1 - a.x1) * np.sin(angle) >= line, f"slanted tick labels overlap at {ta.get_text()!r}"


def _saved_width(fig) -> int:
    """The width in pixels of the PNG :func:`trustgen.plots.save_figure` writes (same dpi, tight box)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return struct.unpack(">II", buf.getvalue()[16:24])[0]


def _assert_fits_slot(fig, slot: str) -> None:
    """The figure, and the PNG written from it, no wider than its slot on the 1280 px page, so the
    browser does not shrink it; every text at least 8 pt at the size it is shown."""
    slot_px = DPI * (HALF_INCHES if slot == "half" else FULL_INCHES)
    assert fig.get_size_inches()[0] * DPI <= slot_px, (fig.get_size_inches(), slot)
    png = _saved_width(fig)
    assert png <= slot_px, (png, slot_px)
    shown = min(1.0, slot_px / png)  # what the browser scales the image by
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    small = [(t.get_text(), round(t.get_fontsize() * shown, 2)) for t in texts if t.get_fontsize() * shown < 8]
    assert not small, small


def _assert_legends_clear(fig) -> None:
    """Each legend inside the figure and over no bar, tick label, text on the axes, title, axis
    label or other legend (matplotlib bounding boxes, in display pixels)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + list(fig.legends)
    assert legends, "the figure has a legend"
    others = []
    for ax in fig.axes:
        others += [(f"bar of {ax.get_title()!r}", p) for p in ax.patches]
        others += [(f"tick label {t.get_text()!r} of {ax.get_title()!r}", t)
                   for t in _drawn_ticklabels(ax.xaxis) + _drawn_ticklabels(ax.yaxis)]
        others += [(f"text {t.get_text()!r}", t) for t in ax.texts + [ax.title, ax.xaxis.label, ax.yaxis.label,
                                                                        ax.xaxis.get_offset_text()]
                   if t.get_visible() and t.get_text()]
    others += [(f"text {t.get_text()!r}", t) for t in fig.texts if t.get_visible() and t.get_text()]
    whole = fig.bbox
    for leg in legends:
        box = leg.get_window_extent(renderer)
        assert whole.x0 <= box.x0 and box.x1 <= whole.x1 and whole.y0 <= box.y0 and box.y1 <= whole.y1, \
            "the legend lies inside the figure"
        for name, artist in others + [("another legend", o) for o in legends if o is not leg]:
            other = artist.get_window_extent(renderer)
            if not np.all(np.isfinite(other.extents)) or other.width == 0 or other.height == 0:
                continue  # a bar not drawn (n/a) or of height 0
            assert not box.overlaps(other), f"the legend covers the {name}"


# --- written and referenced in the report when the section has data ---------------------------------------------

@pytest.mark.parametrize("name", SECTION_FIGURES)
def test_section_figure_is_written_and_referenced(full_report, name):
    out, report = full_report
    entry = next(f for f in report["figures"] if f["file"] == name)
    assert entry["width"] in ("half", "full") and entry["caption"].endswith("Private data.")
    width, height = _png_size(out / name)
    limit = 110 * (HALF_INCHES if entry["width"] == "half" else FULL_INCHES) + 20  # + the tight bounding box
    assert 300 <= width <= limit and 250 <= height <= 700, (width, height)
    assert (out / name).stat().st_size > 10_000  # drawn, not an empty canvas
    assert name in _html_images(out)
    assert f'alt="{entry["caption"][:40]}' in (out / "report.html").read_text().replace("&#x27;", "'")


@pytest.mark.parametrize("name", ("utility.png", "marginals.png", "fairness.png"))
def test_written_figure_fits_its_slot(full_report, name):
    """The PNG the report shows is no wider than its slot: the browser shows it at its own size."""
    out, report = full_report
    entry = next(f for f in report["figures"] if f["file"] == name)
    assert entry["width"] == {"utility.png": "half"}.get(name, "full")
    width, _ = _png_size(out / name)
    assert width <= DPI * (HALF_INCHES if entry["width"] == "half" else FULL_INCHES), (name, width)


def test_section_figures_follow_the_sections_in_page_order(full_report):
    files = [f["file"] for f in full_report[1]["figures"]]
    assert files[-len(SECTION_FIGURES):] == list(SECTION_FIGURES)
    assert files.index("utility.png") < files.index("dcr.png")


def test_privacy_figure_captions_say_what_they_show(full_report):
    captions = {f["file"]: f["caption"] for f in full_report[1]["figures"]}
    assert "training records" in captions["dcr.png"] and "no row is named" in captions["dcr.png"]
    auc = full_report[1]["privacy_attacks"]["metrics"]["density_ratio_mia"]["auc"]
    assert f"AUC {auc:.3f}" in captions["membership_roc.png"] and "training records" in captions["membership_roc.png"]


def test_no_per_record_values_reach_the_json(full_report):
    out, report = full_report
    text = (out / "report.json").read_text()
    assert "figure_data" not in text and '"fpr"' not in text and '"dcr"' not in text
    assert set(report["privacy_attacks"]) == {"private_data_used", "notice", "data", "tested_on_training_data",
                                              "status", "metrics", "skipped", "notes", "seconds", "features",
                                              "mia_setup"}


# --- absent when the section has nothing to draw --------------------------------------------------------------

def test_without_holdout_or_sensitive_no_roc_and_no_fairness_figure(tiny_run, tmp_path):
    report = evaluate(tiny_run, small_table(120, 2), real=small_table(100, 0), out=tmp_path)
    files = {f["file"] for f in report["figures"]}
    assert "membership_roc.png" not in files and "fairness.png" not in files
    assert not (tmp_path / "membership_roc.png").exists() and not (tmp_path / "fairness.png").exists()
    assert {"dcr.png", "diversity.png"} <= files  # the synthetic distances and the clusters need no holdout
    assert sorted(_html_images(tmp_path)) == sorted(files)


def test_a_holdout_too_small_for_the_attack_draws_no_roc(tiny_run, tmp_path):
    report = evaluate(tiny_run, small_table(120, 2), real=small_table(100, 0), holdout=small_table(10, 1),
                      out=tmp_path)
    assert "density_ratio_mia" in report["privacy_attacks"]["skipped"]
    assert "membership_roc.png" not in {f["file"] for f in report["figures"]}
    assert "membership_roc.png" not in _html_images(tmp_path)


def test_failed_distances_and_coverage_draw_no_figure(tiny_run, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise DataError("nothing to compare")
    monkeypatch.setattr(report_privacy_attacks, "closest_record_distances", fail)
    monkeypatch.setattr(report_diversity, "cluster_coverage", fail)
    report = evaluate(tiny_run, small_table(120, 2), real=small_table(100, 0), holdout=small_table(60, 1),
                      sensitive="g", out=tmp_path)
    assert report["privacy_attacks"]["skipped"]["distance_to_closest_record"] == "failed: nothing to compare"
    assert "cluster_coverage" in report["diversity"]["skipped"]
    files = {f["file"] for f in report["figures"]}
    assert "dcr.png" not in files and "diversity.png" not in files
    assert {"membership_roc.png", "fairness.png"} <= files
    assert not (tmp_path / "dcr.png").exists() and not (tmp_path / "diversity.png").exists()
    assert sorted(_html_images(tmp_path)) == sorted(files)


def test_image_sections_draw_no_fairness_figure(image_inputs):
    assert fairness_figure(fairness_section(image_inputs, None)) is None
    attacks = privacy_attacks_section(image_inputs)
    assert dcr_figure(attacks) is not None and membership_roc_figure(attacks) is not None
    div = diversity_figure(diversity_section(image_inputs))
    assert div is not None and div.width == "full" and len(div.figure.axes) == 2  # + label coverage


def test_sections_without_data_give_no_figure(tables):
    fair = fairness_section(tables, None)
    assert fairness_figure(fair) is None
    no_hold = EvaluationInputs.from_data(SMALL_SCHEMA, small_table(120, 2), small_table(100, 0), None, seed=0)
    attacks = privacy_attacks_section(no_hold)
    assert membership_roc_figure(attacks) is None
    dcr = dcr_figure(attacks)
    assert dcr is not None and len(dcr.figure.axes[0].containers) == 1  # the synthetic rows alone
    assert "--holdout" in dcr.caption


# --- the plotted data are the section's numbers ---------------------------------------------------------------

def _bars(ax, label: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left edges, widths and heights of the bar container labelled ``label``."""
    # ax.bar labels the container, ax.hist its first bar
    container = next(c for c in ax.containers if any(str(x).startswith(label) for x in (c.get_label(), c[0].get_label())))
    rects = list(container)
    return (np.array([r.get_x() for r in rects]), np.array([r.get_width() for r in rects]),
            np.array([r.get_height() for r in rects]))


def test_dcr_histograms_are_the_sections_distances(tables):
    s = privacy_attacks_section(tables)
    dist, dcr = s.figure_data["dcr"], s.metrics["distance_to_closest_record"]
    assert np.median(dist.synth) == dcr["synth_median"] and np.median(dist.holdout) == dcr["holdout_median"]
    fig = dcr_figure(s)
    ax = fig.figure.axes[0]
    x_s, w_s, h_s = _bars(ax, "synthetic-to-train")
    x_h, w_h, h_h = _bars(ax, "holdout-to-train")
    np.testing.assert_allclose(x_s, x_h)  # the same bins
    np.testing.assert_allclose(w_s, w_h)
    edges = np.r_[x_s, x_s[-1] + w_s[-1]]
    assert edges[0] == 0 and edges[-1] >= max(dist.synth.max(), dist.holdout.max())
    np.testing.assert_allclose(h_s, np.histogram(dist.synth, edges)[0] / len(dist.synth))
    np.testing.assert_allclose(h_h, np.histogram(dist.holdout, edges)[0] / len(dist.holdout))
    assert h_s.sum() == pytest.approx(1) and h_h.sum() == pytest.approx(1)  # every row is in a bin
    medians = sorted(line.get_xdata()[0] for line in ax.lines)
    assert medians == pytest.approx(sorted([dcr["synth_median"], dcr["holdout_median"]]))
    _assert_readable(fig.figure, HALF_INCHES)


def test_roc_curve_area_is_the_sections_auc(tables):
    s = privacy_attacks_section(tables)
    mia = s.metrics["density_ratio_mia"]
    fig = membership_roc_figure(s)
    ax = fig.figure.axes[0]
    curve = next(line for line in ax.lines if line.get_label().startswith("density-ratio"))
    fpr, tpr = np.asarray(curve.get_xdata(), float), np.asarray(curve.get_ydata(), float)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1) and np.all(np.diff(fpr) >= 0)
    assert abs(np.trapezoid(tpr, fpr) - mia["auc"]) < 1e-6
    assert tpr[fpr <= 0.1].max() == pytest.approx(mia["tpr_at_fpr_0.1"])
    diagonal = next(line for line in ax.lines if line.get_label().startswith("guessing"))
    assert list(diagonal.get_xdata()) == list(diagonal.get_ydata()) == [0, 1]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"density-ratio attack (AUC {mia['auc']:.3f})" in legend
    _assert_readable(fig.figure, HALF_INCHES)


def test_fairness_bars_are_the_sections_shares_and_gaps(tables):
    s = fairness_section(tables, "g")
    rep = s.metrics["group_representation"]
    fig = fairness_figure(s)
    shares_ax, gaps_ax = fig.figure.axes
    groups = [t.get_text() for t in shares_ax.get_xticklabels()]
    assert sorted(groups) == sorted(rep)
    np.testing.assert_allclose(_bars(shares_ax, "real")[2], [rep[g]["real_share"] for g in groups])
    np.testing.assert_allclose(_bars(shares_ax, "synthetic")[2], [rep[g]["synth_share"] for g in groups])
    assert f"{s.metrics['max_abs_representation_diff']:.3f}" in shares_ax.get_title()
    # the gaps are the metric table's: per TSTR model, the row "Demographic parity gap, TSTR <model> (...)"
    models = [t.get_text() for t in gaps_ax.get_xticklabels()]
    assert models == ["logistic", "random_forest"]
    for label, row in (("demographic parity", "Demographic parity gap"), ("equal opportunity", "Equal opportunity gap")):
        table = {r["metric"].split("TSTR ")[1].split(" (")[0]: r["value"] for r in s.rows if r["metric"].startswith(row)}
        heights = _bars(gaps_ax, label)[2]
        np.testing.assert_allclose(heights, [table.get(m, np.nan) for m in models])
    assert fig.width == "full"
    _assert_readable(fig.figure, FULL_INCHES)
    _assert_fits_slot(fig.figure, "full")
    _assert_legends_clear(fig.figure)
    assert all(ax.get_legend().get_window_extent().y0 >= ax.get_window_extent().y1 for ax in fig.figure.axes)


def test_fairness_legends_are_clear_of_the_top_tick_label():
    """The numbers of a report on randhie (hlthg), where the gaps' legend once covered the top y
    tick label: both legends above their axes, clear of every tick label and bar."""
    shares = {"0": {"real_share": 0.65, "synth_share": 0.6597}, "1": {"real_share": 0.35, "synth_share": 0.3403}}
    gaps = {"logistic": {"demographic parity": 0.0, "equal opportunity": 0.0},
            "random_forest": {"demographic parity": 0.05656, "equal opportunity": 0.1241}}
    for with_gaps, slot in ((gaps, "full"), (None, "half")):
        fig = group_share_bars(shares, with_gaps, group_name="hlthg", gap_title="parity gaps (positive = '1')")
        _assert_legends_clear(fig)
        _assert_fits_slot(fig, slot)
        _assert_readable(fig, FULL_INCHES if with_gaps else HALF_INCHES)
        tops = {round(ax.title.get_window_extent().y0, 1) for ax in fig.axes}
        assert len(tops) == 1, "the panels' titles stay level"


def test_coverage_bars_are_the_sections_cluster_shares(tables, image_inputs):
    s = diversity_section(tables)
    cc = s.metrics["cluster_coverage"]
    fig = diversity_figure(s)
    ax = fig.figure.axes[0]
    clusters = [int(t.get_text()) - 1 for t in ax.get_xticklabels()]
    assert sorted(clusters) == list(range(len(cc["real_shares"])))
    np.testing.assert_allclose(_bars(ax, "real")[2], [cc["real_shares"][k] for k in clusters])
    np.testing.assert_allclose(_bars(ax, "synthetic")[2], [cc["synth_shares"][k] for k in clusters])
    assert np.all(np.diff(_bars(ax, "real")[2]) <= 0)  # largest real cluster first
    assert f"{cc['coverage']} of {len(cc['real_shares'])} covered" in ax.get_title()
    red = [t for t in ax.get_xticklabels() if t.get_color() != "black"]
    assert len(red) == len(clusters) - cc["coverage"]
    _assert_readable(fig.figure, HALF_INCHES)
    # conditional images add the label coverage: one bar per class, the share the section reports
    img = diversity_section(image_inputs)
    fig = diversity_figure(img)
    labels_ax = fig.figure.axes[1]
    shares = img.metrics["label_coverage"]["per_class_share"]
    np.testing.assert_allclose(_bars(labels_ax, "recognised")[2], [np.nan if v is None else v for v in shares])
    assert [t.get_text() for t in labels_ax.get_xticklabels()] == img.metrics["classes"]
    _assert_readable(fig.figure, FULL_INCHES)


def test_long_and_many_group_names_are_cut_and_do_not_overlap():
    names = [f"a rather long group name number {i}" for i in range(20)]
    shares = {g: {"real_share": 0.05, "synth_share": 0.04 + 0.001 * i, "diff": 0.001 * i - 0.01}
              for i, g in enumerate(names)}
    gaps = {"logistic": {"demographic parity": 0.2, "equal opportunity": None},
            "random_forest": {"demographic parity": 0.1, "equal opportunity": 0.0}}
    for with_gaps in (gaps, None):
        fig = group_share_bars(shares, with_gaps, group_name="a sensitive column with a very long name indeed")
        ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
        assert all(len(t) <= 20 and "…" in t for t in ticks) and len(set(ticks)) == 20
        assert "…" in fig.axes[0].get_xlabel() and len(fig.axes[0].get_xlabel()) <= 30
        _assert_readable(fig, FULL_INCHES if with_gaps else HALF_INCHES)
        _assert_fits_slot(fig, "full" if with_gaps else "half")
        _assert_legends_clear(fig)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == []  # no values printed over the share bars


# --- the utility bars and the marginals: sized to their slot, legends clear of the bars ---------------------------

def test_utility_bars_fit_the_half_slot_with_the_legend_clear_of_the_bars(tables):
    m = utility_section(tables).metrics
    # the section's scores, and scores near 1 like those of a real run (TRTR random forest 0.9986)
    near_one = ({"logistic": {"accuracy": 0.7487, "roc_auc": 0.7155}, "random_forest": {"accuracy": 0.7553,
                                                                                       "roc_auc": 0.6103}},
                {"logistic": {"accuracy": 0.8993, "roc_auc": 0.7705}, "random_forest": {"accuracy": 0.986,
                                                                                       "roc_auc": 0.9986}})
    for tstr, trtr in ((m["tstr"], m["trtr"]), near_one, (near_one[0], None)):
        fig = utility_bars(tstr, trtr)
        ax = fig.axes[0]
        bars = [(model, k) for model in tstr for k in tstr[model]]
        np.testing.assert_allclose(_bars(ax, "TSTR")[2], [tstr[model][k] for model, k in bars])
        if trtr:
            np.testing.assert_allclose(_bars(ax, "TRTR")[2], [trtr[model][k] for model, k in bars])
        _assert_fits_slot(fig, "half")
        _assert_legends_clear(fig)
        _assert_readable(fig, HALF_INCHES, labelled=False)
        assert ax.get_legend().get_window_extent().y0 >= ax.get_window_extent().y1  # above the axes
    # more models than two-line labels fit: one slanted line each, still in the half slot
    many = {f"gradient_boosting_{i}": {"accuracy": 0.5 + 0.05 * i, "roc_auc": 0.6} for i in range(5)}
    fig = utility_bars(many, {name: {"accuracy": 0.9, "roc_auc": 0.95} for name in many})
    assert {t.get_rotation() for t in fig.axes[0].get_xticklabels()} == {35}
    _assert_fits_slot(fig, "half")
    _assert_legends_clear(fig)
    _assert_readable(fig, HALF_INCHES, labelled=False)


def _wide_table(n: int, seed: int) -> pd.DataFrame:
    """12 columns: numbers of every scale, a long name, categories few, many and very many."""
    rng = np.random.default_rng(seed)
    cols = {"income in dollars of the household last year": rng.lognormal(10, 1, n),
            "tiny": rng.normal(0, 1e-4, n), "year": rng.integers(1990, 2021, n).astype(float),
            "region": rng.choice([f"a region of the country, number {i}" for i in range(30)], n),
            "zip": rng.choice([f"{10000 + i}" for i in range(300)], n),
            "flag": rng.choice(["0", "1"], n), "grade": rng.choice(list("ABCDEFG"), n)}
    for i in range(5):
        cols[f"x{i}"] = rng.normal(i, 1, n)
    return pd.DataFrame(cols)


def test_marginals_fit_the_full_slot_and_wrap_many_columns(tables):
    few = marginals(tables.real_t, tables.synth_t, list(tables.real_t.columns))
    real, synth = _wide_table(400, 0), _wide_table(300, 1)
    many = marginals(real, synth, list(real.columns))
    alone = marginals(None, synth, list(synth.columns), title="synthetic alone")
    for fig in (few, many, alone):
        _assert_fits_slot(fig, "full")
        _assert_legends_clear(fig)
        _assert_readable(fig, FULL_INCHES, labelled=False)
    assert len(few.axes) == 4 and len(many.axes) == 12
    # many columns wrap into more rows, each panel as wide as with few: four or fewer to a row
    rows = {round(ax.get_position().y1, 3) for ax in many.axes}
    assert len(rows) >= 3
    panel = min(ax.get_window_extent().width for ax in many.axes) / DPI
    assert panel >= 1.5, panel
    assert panel >= 0.9 * min(ax.get_window_extent().width for ax in few.axes) / DPI
    # categories: the few flat, the many on a wider panel, the very many cut to the most common
    titles = {ax.get_title().split(" (")[0]: ax for ax in many.axes}
    assert {t.get_rotation() for t in titles["flag"].get_xticklabels()} == {0}
    assert titles["region"].get_window_extent().width > 1.5 * titles["flag"].get_window_extent().width
    regions = [t.get_text() for t in titles["region"].get_xticklabels()]
    assert len(set(regions)) == 30 and all(len(t) <= 16 for t in regions)
    n_zip = len(set(real["zip"]) | set(synth["zip"]))
    zip_ax = next(ax for ax in many.axes if ax.get_title().startswith("zip"))
    assert n_zip > 100 and zip_ax.get_title() == f"zip ({len(zip_ax.get_xticklabels())} most common of {n_zip})"
    # the shares drawn are the data's
    flag = titles["flag"]
    for label, data in (("real", real), ("synthetic", synth)):
        np.testing.assert_allclose(_bars(flag, label)[2], [np.mean(data["flag"] == c) for c in ("0", "1")])
    assert _bars(titles["x0"], "synthetic")[2].sum() == pytest.approx(1)  # a histogram of shares of rows
