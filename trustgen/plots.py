"""Figures people would rather look at than read: sample grids and marginals."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from trustgen.io import atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on servers or in CI
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> None:
    """Save a matplotlib figure atomically as PNG."""
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d) / "fig.png"
        fig.savefig(tmp, dpi=DPI, bbox_inches="tight")
        data = tmp.read_bytes()
    atomic_write(Path(path), lambda f: f.write(data), "wb")
    _pyplot().close(fig)


def image_grid(x: np.ndarray, labels: np.ndarray | None, class_names=None, *, low: float = 0.0,
               high: float = 1.0, per_row: int = 10, per_class: int | None = 10, title: str | None = None):
    """A grid of images ``x`` (N x C x H x W), ``per_row`` to a row.

    With labels, each class starts a row of its own and shows its first ``per_class`` images
    (None: all of them, over as many rows as they need); without labels every image is shown.
    """
    plt = _pyplot()
    if labels is not None:
        rows, heads = [], []
        for c in np.unique(labels):
            idx = np.flatnonzero(labels == c)[:per_class]
            for i in range(0, len(idx), per_row):
                rows.append(idx[i:i + per_row])
                heads.append(c if i == 0 else None)  # the class is named on its first row only
    else:
        idx = np.arange(len(x))
        rows = [idx[i:i + per_row] for i in range(0, len(idx), per_row)]
        heads = [None] * len(rows)
    fig, axes = plt.subplots(len(rows), per_row, figsize=(per_row * 0.9, len(rows) * 0.95), squeeze=False)
    for r, row in enumerate(rows):
        for c in range(per_row):
            ax = axes[r, c]
            ax.axis("off")
            if c >= len(row):
                continue
            img = (x[row[c]] - low) / (high - low)
            if img.shape[0] == 1:
                ax.imshow(img[0], cmap="gray_r", vmin=0, vmax=1)
            else:
                ax.imshow(np.clip(img.transpose(1, 2, 0), 0, 1))
        if heads[r] is not None:
            name = heads[r] if class_names is None else class_names[heads[r]]
            axes[r, 0].set_title(f"class {name}", fontsize=7, loc="left")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def uncertainty_grid(x: np.ndarray, maps: np.ndarray, scores: np.ndarray, *, low: float = 0.0, high: float = 1.0,
                     per_row: int = 10, title: str | None = None):
    """Each image of ``x`` (N x C x H x W) above its uncertainty map (N x C x H x W, one colour
    scale for all, shown on the right), titled with its score; the most uncertain first."""
    plt = _pyplot()
    order = np.argsort(-np.asarray(scores), kind="stable")
    n_rows = -(-len(order) // per_row)
    fig, axes = plt.subplots(2 * n_rows, per_row, figsize=(per_row * 0.9 + 1.0, n_rows * 1.9 + 0.5), squeeze=False)
    fig.subplots_adjust(left=0.02, right=0.86, bottom=0.02, top=1 - 0.6 / (n_rows * 1.9 + 0.5), hspace=0.25)
    vmax = float(np.quantile(maps, 0.999)) or 1.0  # one scale for all; a single extreme pixel does not set it
    shown = None
    for k, i in enumerate(order):
        r, c = divmod(k, per_row)
        img = (x[i] - low) / (high - low)
        top, bottom = axes[2 * r, c], axes[2 * r + 1, c]
        if img.shape[0] == 1:
            top.imshow(img[0], cmap="gray_r", vmin=0, vmax=1)
        else:
            top.imshow(np.clip(img.transpose(1, 2, 0), 0, 1))
        shown = bottom.imshow(maps[i].mean(0), cmap="magma", vmin=0, vmax=vmax)
        top.set_title(f"{scores[i]:.3g}", fontsize=6)
    for ax in axes.flat:
        ax.axis("off")
    if shown is not None:
        fig.colorbar(shown, cax=fig.add_axes([0.89, 0.25, 0.025, 0.5]), label="posterior std per pixel")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def attribution_bars(values: np.ndarray, names: list[str], titles: list[str], *, top: int = 10,
                     label: str = "attribution"):
    """One panel per row of ``values`` (``[n, features]``): its ``top`` non-zero features by
    absolute value as horizontal bars, positive (towards the target) in blue, negative in red."""
    plt = _pyplot()
    n = len(values)
    cols = min(n, 2)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 0.28 * top * rows + 0.9 * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= n:
            ax.axis("off")
            continue
        order = np.argsort(-np.abs(values[k]), kind="stable")[:top]
        order = order[values[k][order] != 0][::-1]  # a feature left alone has nothing to show
        v = values[k][order]
        ax.barh(range(len(order)), v, color=np.where(v >= 0, "#3465a4", "#cc3333"))
        ax.set_yticks(range(len(order)), [names[j] for j in order], fontsize=7)
        ax.axvline(0, color="black", linewidth=0.6)
        ax.set_title(titles[k], fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.set_xlabel(label, fontsize=7)
    fig.tight_layout()
    return fig


def counterfactual_images(x: np.ndarray, cf: np.ndarray, attributions: np.ndarray | None, titles: list[str], *,
                          low: float = 0.0, high: float = 1.0):
    """A row per input: the image, its counterfactual, the change (counterfactual - input) and,
    when given, the attribution heat map (red: the change pushes towards the target). All
    ``N x C x H x W``."""
    plt = _pyplot()
    heads = ["input", "counterfactual", "change"] + (["attribution"] if attributions is not None else [])
    fig, axes = plt.subplots(len(x), len(heads), figsize=(1.3 * len(heads) + 1.6, 1.35 * len(x) + 0.3), squeeze=False)
    span = high - low
    for i in range(len(x)):
        a, b = (x[i] - low) / span, (cf[i] - low) / span
        panels = [(a.mean(0), "gray_r", 0, 1), (b.mean(0), "gray_r", 0, 1), ((b - a).mean(0), "RdBu_r", -1, 1)]
        if attributions is not None:
            m = attributions[i].mean(0)
            scale = float(np.abs(m).max()) or 1.0
            panels.append((m, "RdBu_r", -scale, scale))
        for j, (img, cmap, vmin, vmax) in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(heads[j], fontsize=8)
        axes[i, 0].set_ylabel(titles[i], fontsize=7, rotation=0, ha="right", va="center")
    fig.tight_layout()
    return fig


def score_histograms(panels: list[tuple[str, dict[str, np.ndarray]]], title: str | None = None):
    """One histogram per score name, each set of ``panels`` (label, {name: values}) overlaid."""
    plt = _pyplot()
    names = list(panels[0][1])
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 2.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        every = np.concatenate([np.asarray(p[1][name], dtype=float) for p in panels])
        every = every[np.isfinite(every)]
        edges = np.histogram_bin_edges(every, bins=30) if len(every) else 10
        for label, values in panels:
            ax.hist(np.asarray(values[name], dtype=float), bins=edges, alpha=0.55, label=label, density=True)
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=7)
    if len(panels) > 1:
        axes[0, 0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def marginals(real, synth, columns: list[str], max_columns: int = 12, title: str | None = None, *,
              width: float | None = None):
    """Histograms (numbers) or bar charts (categories) of synthetic columns, against real ones
    when ``real`` is given (None: the synthetic data alone), each as shares of its rows.

    Sized for the report's full-width slot (``width`` inches, default :data:`FULL_INCHES` less the
    saved margin): four panels to a row, more columns wrap into more rows; a column with more
    categories than fit a panel spans two or four, and past what a whole row holds it shows its
    most common ones. One legend above the panels (under ``title``), so it covers none of them.
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    alone = real is None
    if alone:
        real = synth.iloc[:0]
    width = FULL_INCHES - 0.2 if width is None else width  # save_figure's tight box adds 0.1 in a side
    per_row = 4
    cell = width / per_row
    line = 1.2 * TICK_PT / 72
    panels = []  # (name, categories shown or None for numbers, all categories, span)
    for name in columns[:max_columns]:
        r, s = real[name], synth[name]
        if r.dtype.kind in "if" and s.dtype.kind in "if":
            panels.append((name, None, 0, 1))
            continue
        cats = sorted(set(map(str, r)) | set(map(str, s)))
        span = next((k for k in (1, 2, 4) if 0.8 * cell * k / max(len(cats), 1) >= line), per_row)
        fit = int(0.8 * cell * span / line)
        shown = cats
        if len(cats) > fit:  # even a whole row cannot label them all: the most common ones
            count = pd.concat([r.astype(str), s.astype(str)]).value_counts()
            keep = set(count.index[:fit])
            shown = [c for c in cats if c in keep]
        panels.append((name, shown, len(cats), span))
    rows, used = [], per_row
    for k, panel in enumerate(panels):  # in the given order, a new row when the next panel does not fit
        if used + panel[3] > per_row:
            rows.append([])
            used = 0
        rows[-1].append((k, used))
        used += panel[3]
    labels = {k: [short_label(c, 16) for c in p[1]] for k, p in enumerate(panels) if p[1] is not None}
    rotation = {k: _tick_rotation(v, cell * panels[k][3]) for k, v in labels.items()}
    height = 0.3 + (0.25 if title else 0.0)  # the legend (and its title) above the panels
    for row in rows:  # each row 2.2 in, and the room its slanted or upright labels take
        extra = [0.0] + [(0.6 if rotation[k] == 35 else 0.065 * max(map(len, labels[k]), default=0))
                         for k, _ in row if rotation.get(k)]
        height += 2.2 + max(extra)
    used_cells = max((c + panels[k][3] for row in rows for k, c in row), default=1)
    # constrained layout gives each row the room of its own labels (a tight layout would space every
    # row like the one with the longest), so the panels keep one height
    fig = plt.figure(figsize=(cell * used_cells, height), layout="constrained")
    grid = fig.add_gridspec(len(rows), used_cells)
    for i, row in enumerate(rows):
        for k, c in row:
            name, shown, n_cats, span = panels[k]
            ax = fig.add_subplot(grid[i, c:c + span])
            r, s = real[name], synth[name]
            if shown is None:
                bins = np.histogram_bin_edges(np.concatenate([r, s]).astype(float), bins=30)
                for label, v, color in (() if alone else (("real", r, REAL_COLOR),)) + (("synthetic", s, SYNTH_COLOR),):
                    ax.hist(v, bins=bins, weights=np.full(len(v), 1.0 / max(len(v), 1)), color=color,
                            alpha=0.9 if alone else 0.55, label=label)  # overlaid: both seen
                ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
                ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
                ax.xaxis.get_offset_text().set_fontsize(TICK_PT)
            else:
                rs, ss = r.astype(str), s.astype(str)
                sf = [np.mean(ss == c) for c in shown]
                pos = np.arange(len(shown))
                if alone:
                    ax.bar(pos, sf, 0.6, color=SYNTH_COLOR, label="synthetic")
                else:
                    ax.bar(pos - 0.2, [np.mean(rs == c) for c in shown], 0.4, color=REAL_COLOR, label="real")
                    ax.bar(pos + 0.2, sf, 0.4, color=SYNTH_COLOR, label="synthetic")
                _category_ticks(ax, labels[k], rotation[k])
            ax.tick_params(labelsize=TICK_PT)
            ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
            more = "" if shown is None or len(shown) == n_cats else f" ({len(shown)} most common of {n_cats})"
            ax.set_title(short_label(name, 22 * span) + more, fontsize=TITLE_PT)
            if c == 0:
                ax.set_ylabel("share of rows", fontsize=LABEL_PT)
    if fig.axes:  # above the panels, in room of its own; the title heads it
        handles, names = fig.axes[0].get_legend_handles_labels()
        fig.legend(handles, names, loc="outside upper center", ncol=len(names), fontsize=LABEL_PT, frameon=False,
                   title=title, title_fontsize=TITLE_PT)
    return fig


def utility_bars(tstr: dict, trtr: dict | None, *, test_data: str = "holdout"):
    """TSTR beside TRTR per model and score (``{model: {score: value}}``, as
    :func:`trustgen.evaluation.utility.tstr` returns them), sized for a half-width slot; the legend
    above the axes, clear of the bars."""
    plt = _pyplot()
    bars = [(m, k) for m in tstr for k in tstr[m]]
    fig, ax = plt.subplots(figsize=(HALF_INCHES, 3.6))
    x = np.arange(len(bars))
    width = 0.38 if trtr else 0.6
    ax.bar(x - (width / 2 if trtr else 0), [tstr[m][k] for m, k in bars], width, color=SYNTH_COLOR,
           label="TSTR: trained on synthetic")
    if trtr:
        ax.bar(x + width / 2, [trtr[m][k] for m, k in bars], width, color=REAL_COLOR, label="TRTR: trained on real")
    ax.set_xticks(x, [f"{short_label(m, 14)}\n{k.replace('_', ' ')}" for m, k in bars], fontsize=TICK_PT)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(f"score on the {test_data}", fontsize=LABEL_PT)
    ax.tick_params(axis="y", labelsize=TICK_PT)
    ax.set_title("utility: trained on synthetic vs real data", fontsize=TITLE_PT)
    _legend_above(ax)
    fig.tight_layout()
    if _overlapping(ax.get_xticklabels(), fig.canvas.get_renderer()):  # too many models: one slanted line each
        names = [f"{short_label(m, 14)} {k.replace('_', ' ')}" for m, k in bars]
        _category_ticks(ax, names, 35 if _tick_rotation(names, HALF_INCHES) != 90 else 90)
    _raise_titles(fig, [ax])
    return fig


def marginal_distance_figure(one_way: dict, two_way: dict, names: list[str], *, title: str = ""):
    """1-way distances per column as bars (largest first) and the 2-way distance of every pair
    of columns as a heat map (``two_way`` keyed ``"a & b"``, as
    :func:`trustgen.evaluation.marginal_distances.marginal_distances` returns it)."""
    import pandas as pd

    n = len(names)
    mat = pd.DataFrame(np.zeros((n, n)), index=names, columns=names)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            mat.loc[a, b] = mat.loc[b, a] = two_way.get(f"{a} & {b}", 0.0)
    for a in names:
        mat.loc[a, a] = one_way.get(a, 0.0)
    heat = association_heatmap([(mat, "2-way distance of each pair (diagonal: 1-way)", False)])
    plt = _pyplot()
    order = sorted(one_way, key=lambda c: -one_way[c])
    fig, ax = plt.subplots(figsize=(max(6.0, 0.32 * len(order) + 2.0), 3.6))
    ax.bar(range(len(order)), [one_way[c] for c in order], color="#c0392b")
    ax.set_xticks(range(len(order)), [str(c)[:21] for c in order], rotation=90, fontsize=8)
    ax.set_ylabel("total variation (0: identical)")
    ax.set_ylim(0, max(0.05, max(one_way.values(), default=0) * 1.15))
    ax.set_title(title or "1-way marginal distance per column", fontsize=10)
    fig.tight_layout()
    return fig, heat


def association_heatmap(panels: list[tuple[pd.DataFrame, str, bool]]):
    """Heat maps of association matrices: signed ones on a diverging scale, differences in [0, 1]."""
    plt = _pyplot()
    cols = list(panels[0][0].columns)
    n = len(cols)
    labels = [str(c) if len(str(c)) <= 22 else str(c)[:21] + "…" for c in cols]
    # Readable on a 1280 px page: every cell at least 0.28 in (a label of 8 pt fits), and past 12
    # columns one panel per row, so a panel gets the page's whole width rather than half of it.
    size = min(max(3.2, 0.28 * n + 2.2), 13.0)
    fontsize = 8 if n <= 40 else 6
    stacked = n > 12 and len(panels) > 1
    shape = (len(panels), 1) if stacked else (1, len(panels))
    figsize = (size + 0.9, len(panels) * size) if stacked else (len(panels) * (size + 0.9), size)
    fig, axes = plt.subplots(*shape, figsize=figsize, squeeze=False)
    for i, (ax, (mat, title, signed)) in enumerate(zip(axes.flatten(), panels)):
        im = ax.imshow(mat.to_numpy(), cmap="RdBu_r" if signed else "Reds", vmin=-1 if signed else 0, vmax=1)
        ax.set_title(title, fontsize=10)
        ax.set_xticks(range(n), labels, rotation=90, fontsize=fontsize)
        ax.set_yticks(range(n), labels if i == 0 or stacked else [""] * n, fontsize=fontsize)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


# The report's figures (marginals, utility and the section figures below) are sized for its
# 1280 px page: at 110 dpi a half-width figure is at most ~4.7 in (its slot shows about 520 px
# unshrunk) and a full-width one at most ~9.6 in (about 1068 px), so their 8 pt labels are not
# shrunk; long names are cut with an ellipsis.
DPI = 110
HALF_INCHES, FULL_INCHES = 4.7, 9.6
TICK_PT, LABEL_PT, TITLE_PT = 8, 9, 10
REAL_COLOR, SYNTH_COLOR = "#7f8c8d", "#c0392b"


def _legend_above(ax, ncol: int | None = None):
    """The axes' legend above it, centred, in one row (``ncol`` None) or ``ncol`` columns: it
    covers no bar and no tick label. :func:`_raise_titles` then lifts the title over it."""
    handles, labels = ax.get_legend_handles_labels()
    return ax.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=ncol or len(labels),
                     fontsize=TICK_PT, frameon=False, borderaxespad=0.2, handlelength=1.2, columnspacing=1.2)


def _raise_titles(fig, axes) -> None:
    """After :func:`_legend_above`: a legend wider than its axes goes to one entry a row, each
    title is lifted over the tallest legend (so the titles of a row of panels stay level) and the
    layout is redone."""
    fig.tight_layout()
    renderer = fig.canvas.get_renderer()
    for ax in axes:
        if ax.get_legend().get_window_extent(renderer).width > ax.get_window_extent(renderer).width:
            _legend_above(ax, ncol=1)
    tall = max(ax.get_legend().get_window_extent(renderer).height for ax in axes) * 72 / fig.dpi
    for ax in axes:  # the pad reaches the title's baseline: room for the legend's gap and the descenders
        ax.set_title(ax.get_title(), fontsize=TITLE_PT, pad=tall + 0.2 * TICK_PT + 0.3 * TITLE_PT + 2)
    fig.tight_layout()


def _overlapping(labels, renderer) -> bool:
    """Whether any two neighbouring (visible, non-empty) tick labels overlap."""
    boxes = [t.get_window_extent(renderer) for t in labels if t.get_visible() and t.get_text()]
    return any(a.x1 > b.x0 for a, b in zip(boxes, boxes[1:]))


def short_label(name, width: int = 16) -> str:
    """``name`` as text of at most ``width`` characters, cut in the middle with an ellipsis (the
    end is kept: names that differ only there, "income 2019" / "income 2020", stay apart)."""
    text = str(name)
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def _tick_rotation(labels: list[str], panel_inches: float) -> int:
    """0, 35 or 90 degrees: the least slant at which 8 pt category labels do not overlap."""
    slot = 0.8 * panel_inches / max(len(labels), 1)  # the axes get about 80% of their panel
    longest = max((len(t) for t in labels), default=0)
    line = 1.2 * TICK_PT / 72  # a line of 8 pt text, with some space
    if longest * 0.075 < 0.9 * slot:  # ~0.075 in per 8 pt character
        return 0
    return 35 if slot * np.sin(np.deg2rad(35)) >= line else 90


def _category_ticks(ax, labels: list[str], rotation: int) -> None:
    if rotation in (0, 90):
        ax.set_xticks(range(len(labels)), labels, fontsize=TICK_PT, rotation=rotation)
    else:  # slanted: each label ends under its tick
        ax.set_xticks(range(len(labels)), labels, fontsize=TICK_PT, rotation=rotation, ha="right",
                      rotation_mode="anchor")


def dcr_histograms(synth: np.ndarray, holdout: np.ndarray | None = None, *, synth_median: float | None = None,
                   holdout_median: float | None = None, bins: int = 30, features: str = "standardised features"):
    """Histograms of the distance to the closest training record: of the synthetic rows and, when
    given, of the holdout rows, over the same bins (from 0), each as shares of its rows; dashed
    lines at the given medians."""
    plt = _pyplot()
    synth = np.asarray(synth, dtype=float)
    every = synth if holdout is None else np.concatenate([synth, np.asarray(holdout, dtype=float)])
    top = float(every.max()) if len(every) else 0.0
    edges = np.histogram_bin_edges(every, bins=bins, range=(0.0, top if top > 0 else 1.0))
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    panels = [("synthetic-to-train", synth, SYNTH_COLOR, synth_median)]
    if holdout is not None:
        panels.append(("holdout-to-train", np.asarray(holdout, dtype=float), REAL_COLOR, holdout_median))
    for name, values, color, median in panels:
        ax.hist(values, bins=edges, weights=np.full(len(values), 1.0 / len(values)), color=color, alpha=0.55,
                label=f"{name} ({len(values)} rows)")
        if median is not None:
            ax.axvline(median, color=color, linestyle="--", linewidth=1.2, label=f"median {median:.3g}")
    ax.set_xlim(0, edges[-1])
    ax.set_xlabel(f"distance to the closest training record ({features})", fontsize=LABEL_PT)
    ax.set_ylabel("share of rows", fontsize=LABEL_PT)
    ax.tick_params(labelsize=TICK_PT)
    ax.legend(fontsize=TICK_PT)
    ax.set_title("distance to closest record", fontsize=TITLE_PT)
    fig.tight_layout()
    return fig


def roc_figure(fpr: np.ndarray, tpr: np.ndarray, auc: float, *, attack: str = "membership attack"):
    """An attack's ROC curve (``fpr``, ``tpr`` from (0, 0) to (1, 1)) with the diagonal of guessing;
    ``auc`` is named in the legend."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 3.9))
    ax.plot([0, 1], [0, 1], linestyle="--", color=REAL_COLOR, linewidth=1, label="guessing (AUC 0.5)")
    ax.plot(np.asarray(fpr, dtype=float), np.asarray(tpr, dtype=float), color=SYNTH_COLOR, linewidth=1.6,
            label=f"{attack} (AUC {auc:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("false-positive rate (non-members flagged)", fontsize=LABEL_PT)
    ax.set_ylabel("true-positive rate (members found)", fontsize=LABEL_PT)
    ax.tick_params(labelsize=TICK_PT)
    ax.legend(fontsize=TICK_PT, loc="lower right")
    ax.set_title("membership attack: ROC curve", fontsize=TITLE_PT)
    fig.tight_layout()
    return fig


def group_share_bars(shares: dict, gaps: dict | None = None, *, group_name: str = "group",
                     gap_title: str = "parity gaps of the TSTR models"):
    """Real beside synthetic share of each group (``{group: {"real_share", "synth_share"}}``) and,
    when given, the gaps per model (``{model: {gap name: value or None}}``) as grouped bars."""
    plt = _pyplot()
    groups = list(shares)
    names = [short_label(g, 20) for g in groups]
    gap_w = 3.8
    left_w = min(max(3.0, 0.5 * len(groups) + 1.2), FULL_INCHES - 0.4 - gap_w if gaps else HALF_INCHES - 0.4)
    widths = [left_w] + ([gap_w] if gaps else [])
    rotation = _tick_rotation(names, left_w)
    fig, axes = plt.subplots(1, len(widths), figsize=(sum(widths) + 0.4, 3.7 + (0.6 if rotation else 0)),
                             squeeze=False, gridspec_kw={"width_ratios": widths})
    ax = axes[0, 0]
    x = np.arange(len(groups))
    ax.bar(x - 0.2, [shares[g]["real_share"] for g in groups], 0.4, color=REAL_COLOR, label="real")
    ax.bar(x + 0.2, [shares[g]["synth_share"] for g in groups], 0.4, color=SYNTH_COLOR, label="synthetic")
    _category_ticks(ax, names, rotation)
    ax.set_xlabel(short_label(group_name, 30), fontsize=LABEL_PT)
    ax.set_ylabel("share of rows", fontsize=LABEL_PT)
    ax.set_ylim(0, 1.08 * max(max(v["real_share"], v["synth_share"]) for v in shares.values()) + 0.01)
    ax.tick_params(axis="y", labelsize=TICK_PT)
    _legend_above(ax)  # above the axes: on no bar and no tick label
    worst = max(groups, key=lambda g: abs(shares[g]["synth_share"] - shares[g]["real_share"]))
    diff = abs(shares[worst]["synth_share"] - shares[worst]["real_share"])
    ax.set_title(f"group shares (largest difference {diff:.3f})", fontsize=TITLE_PT)
    if gaps:
        ax = axes[0, 1]
        models = list(gaps)
        kinds = list(dict.fromkeys(k for m in models for k in gaps[m]))
        w = 0.8 / len(kinds)
        colors = ["#3465a4", "#e69f00", "#59a14f", "#8e44ad"]
        for j, name in enumerate(kinds):
            pos = np.arange(len(models)) + (j - (len(kinds) - 1) / 2) * w
            vals = [gaps[m].get(name) for m in models]
            ax.bar(pos, [np.nan if v is None else v for v in vals], w, color=colors[j % len(colors)], label=name)
            for p, v in zip(pos, vals):  # the value, so a gap of 0 is told from one not computed
                ax.text(p, 0 if v is None else v, "n/a" if v is None else f"{v:.3f}", ha="center", va="bottom",
                        fontsize=TICK_PT)
        model_names = [short_label(m) for m in models]
        _category_ticks(ax, model_names, _tick_rotation(model_names, widths[1]))
        top = max((v for m in models for v in gaps[m].values() if v is not None), default=0.0)
        ax.set_ylim(0, max(0.1, 1.15 * top))  # headroom for the values printed on the bars
        ax.set_ylabel("gap (0: parity)", fontsize=LABEL_PT)
        ax.set_xlabel("TSTR model", fontsize=LABEL_PT)
        ax.tick_params(axis="y", labelsize=TICK_PT)
        _legend_above(ax)
        ax.set_title(gap_title, fontsize=TITLE_PT)
    _raise_titles(fig, list(axes[0]))
    return fig


def coverage_bars(real_shares: list[float], synth_shares: list[float], min_relative_share: float, *,
                  class_shares: list[float | None] | None = None, class_names: list[str] | None = None,
                  class_threshold: float | None = None):
    """Cluster coverage as bars: the real and the synthetic share of each cluster (largest real
    share first), a tick at ``min_relative_share`` times the real share that the synthetic bar
    must reach for the cluster to count as covered, uncovered clusters named in red. With
    ``class_shares`` (label coverage), a second panel: the share of each class's samples
    recognised as that class, with ``class_threshold`` as a dashed line."""
    plt = _pyplot()
    widths = [4.4] + ([4.6] if class_shares is not None else [])
    fig, axes = plt.subplots(1, len(widths), figsize=(sum(widths) + 0.2, 3.4), squeeze=False,
                             gridspec_kw={"width_ratios": widths})
    ax = axes[0, 0]
    p, q = np.asarray(real_shares, dtype=float), np.asarray(synth_shares, dtype=float)
    order = np.argsort(-p, kind="stable")
    x = np.arange(len(order))
    ax.bar(x - 0.2, p[order], 0.4, color=REAL_COLOR, label="real")
    ax.bar(x + 0.2, q[order], 0.4, color=SYNTH_COLOR, label="synthetic")
    need = min_relative_share * p[order]
    ax.hlines(need, x + 0.02, x + 0.38, color="black", linewidth=1.5,
              label=f"covered from here ({min_relative_share:g} x real)")
    covered = q[order] >= need
    cluster_names = [str(k + 1) for k in order]
    _category_ticks(ax, cluster_names, _tick_rotation(cluster_names, widths[0]))
    for tick, ok in zip(ax.get_xticklabels(), covered):
        tick.set_color("black" if ok else "#c81e1e")
    ax.set_xlabel("cluster of the real data (largest first; red: not covered)", fontsize=LABEL_PT)
    ax.set_ylabel("share of rows", fontsize=LABEL_PT)
    ax.set_ylim(0, 1.5 * max(p.max(), q.max()))
    ax.tick_params(axis="y", labelsize=TICK_PT)
    ax.legend(fontsize=TICK_PT, loc="upper right", ncol=2)  # in the headroom above the bars
    ax.set_title(f"cluster coverage: {int(covered.sum())} of {len(p)} covered", fontsize=TITLE_PT)
    if class_shares is not None:
        ax = axes[0, 1]
        names = [short_label(c, 10) for c in (class_names or range(len(class_shares)))]
        vals = [np.nan if v is None else v for v in class_shares]
        ax.bar(range(len(vals)), vals, 0.6, color=SYNTH_COLOR, label="recognised as requested")
        for i, v in enumerate(class_shares):
            if v is None:
                ax.text(i, 0.02, "none", ha="center", va="bottom", fontsize=TICK_PT)
        if class_threshold is not None:
            ax.axhline(class_threshold, color="black", linestyle="--", linewidth=1,
                       label=f"covered at {class_threshold:g}")
        _category_ticks(ax, names, _tick_rotation(names, widths[1]))
        ax.set_ylim(0, 1.25)
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.set_xlabel("requested class", fontsize=LABEL_PT)
        ax.set_ylabel("share of its samples", fontsize=LABEL_PT)
        ax.tick_params(axis="y", labelsize=TICK_PT)
        ax.legend(fontsize=TICK_PT, loc="upper right", ncol=2)  # above the bars, which end at 1
        n_cov = sum(v is not None and class_threshold is not None and v >= class_threshold for v in class_shares)
        ax.set_title(f"label coverage: {n_cov} of {len(vals)} classes" if class_threshold is not None
                     else "label coverage", fontsize=TITLE_PT)
    fig.tight_layout()
    return fig
