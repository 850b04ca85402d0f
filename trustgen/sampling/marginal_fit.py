"""Samples corrected towards the run's 1-way marginals and pair tables, by choosing among more of them.

For every batch of ``m`` samples the sampler draws a pool of :data:`OVERSAMPLE` ``* m``, weighs
the pool so that its weighted marginals (the released pair tables, each categorical column's,
the label's, and where values may not move the numbers' bins) match the run's
(:mod:`trustgen.privacy.marginal_histogram`), and keeps ``m`` distinct samples, each with
probability proportional to its weight, within each class in the proportions of the label prior
(:func:`pick_by_class`). Every kept sample is one the model generated whole; then each numeric
column of the kept batch is moved, in rank order, onto its target marginal
(:func:`quantile_map`): values go where the model rarely puts them, and the order of the
samples in every column, hence the relations between columns, stays the model's. (Where an
output or noise hook has read the samples, a constraint's flag or a watermark's key, values are
not moved: only the choice of samples corrects them.)

Where the run released pair tables, each is first shrunk towards the model's own table by as
much as its noise explains (:func:`shrunk_pair_target`) and raked onto its columns' 1-way
targets (:func:`fit_margins`); the numbers whose pairs are furthest from their targets are then
mapped within the bins of one other column each (:func:`condition_tree`,
:func:`conditional_map`), on the pool and again on the kept batch, so that the pairs a model
smears (columns that sit on a few joint points) come out as released.

The weights come from raking (iterative proportional fitting, :data:`RAKING_ROUNDS` rounds
over the tables), capped at :data:`WEIGHT_CAP` times the mean: no row can be kept more than
once, so a weight above that would ask for more than the pool holds.

Under DP the stored counts carry Gaussian noise; the target of each column is its noisy counts
weighed against the pool's own marginal by how far the noise explains their difference
(:mod:`trustgen.sampling.marginal_shrinkage`: a prior fitted to all columns at once), projected
onto the distributions of the ``n`` training records (:func:`simplex`: bins whose counts are
noise alone come out empty). ``n`` is public in the privacy plan. All of this is
post-processing of the DP release and of the DP model's own samples: it costs no privacy.

The label is raked to the run's label prior (which labels are drawn from anyway). Explicit
labels (a class, or one per sample) switch the correction off: the pool could not keep them.
"""

from __future__ import annotations

import torch

from trustgen.privacy.marginal_histogram import EDGE_SLACK, MarginalColumn, marginal_layout, pair_layout
from trustgen.sampling.marginal_shrinkage import pool_shares, shrunk_targets, simplex

OVERSAMPLE = 4
#: A bin's values follow the model's own values in it (:func:`quantile_map`) where the model put
#: at least this many there; with fewer they spread evenly over the bin. (With one, every row
#: mapped into the bin took that one value: 61 of 500 samples on one point, found by a fuzzer.)
WITHIN_MIN = 5
RAKING_ROUNDS = 25
WEIGHT_CAP = float(OVERSAMPLE)


def column_targets(marginals: dict, records: int, pool: list[torch.Tensor] | None = None,
                   pool_rows: int | None = None) -> list[torch.Tensor]:
    """Each column's target probabilities: its stored counts projected by :func:`simplex`, or,
    given the pool's own shares of every column (from ``pool_rows`` rows) and noisy counts, the
    two combined by :func:`~trustgen.sampling.marginal_shrinkage.shrunk_targets`."""
    counts = [torch.tensor(c, dtype=torch.float64) for c in marginals["counts"]]
    if pool is None:
        return [simplex(c, records) for c in counts]
    return shrunk_targets(counts, pool, records, float(marginals["noise_std"]), pool_rows)


def rake(codes: list[torch.Tensor], targets: list[torch.Tensor], rounds: int = RAKING_ROUNDS,
         cap: float = WEIGHT_CAP) -> torch.Tensor:
    """Weights ``[m]`` whose weighted share of every bin of every column is as close to its
    target as the pool and the cap allow (iterative proportional fitting)."""
    m = len(codes[0])
    w = torch.ones(m, dtype=torch.float64)
    for _ in range(rounds):
        for cols, t in zip(codes, targets):
            mass = torch.zeros(len(t), dtype=torch.float64).index_add_(0, cols, w)
            share = mass / mass.sum()
            factor = torch.where(share > 0, t / share.clamp(min=1e-300), torch.ones_like(t))
            moved = w * factor[cols]
            if not moved.sum() > 0:  # the pool has no row in any bin the target keeps: leave this column
                continue
            w = (moved / moved.mean()).clamp(max=cap)
    return w / w.sum()


def pick(weights: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """``k`` distinct indices, each row included with probability proportional to its weight
    (capped at 1: ``min(1, c w_i)`` with ``c`` so that they sum to ``k``; systematic sampling
    along a random order), in increasing order. A row weighted far above the rest is then kept
    once rather than standing in for several, and every other row in exact proportion, so the
    kept rows' expected shares are the weighted pool's wherever no weight exceeds ``1/k``."""
    n = len(weights)
    if not bool(torch.isfinite(weights).all()) or not weights.sum() > 0:
        weights = torch.ones_like(weights)  # never a fixed choice: equal weights instead
    w = weights.double().clamp(min=0.0)
    if int((w > 0).sum()) < k:  # too few rows with weight: the rest join at a tiny weight
        w = torch.where(w > 0, w, torch.full_like(w, float(w.max()) * 1e-9 if w.max() > 0 else 1.0))
    incl = torch.zeros(n, dtype=torch.float64)
    full = torch.zeros(n, dtype=torch.bool)
    for _ in range(n):  # rows whose share would exceed 1 are kept for sure; the rest share the remainder
        rest = w.masked_fill(full, 0.0)
        incl = torch.where(full, torch.ones_like(w), rest * (k - int(full.sum())) / rest.sum())
        over = (incl > 1.0) & ~full
        if not bool(over.any()):
            break
        full |= over
    order = torch.randperm(n, generator=generator)
    u = float(torch.rand((), generator=generator, dtype=torch.float64))
    cum = torch.cumsum(incl[order], 0)
    hits = torch.floor(cum - u + 1.0) - torch.floor(torch.cat([cum.new_zeros(1), cum[:-1]]) - u + 1.0)
    chosen = order[hits > 0]
    if len(chosen) != k:  # rounding at the last row: take the largest inclusions to make up k
        rest = torch.ones(n, dtype=torch.bool)
        rest[chosen] = False
        extra = torch.topk(incl.masked_fill(~rest, -1.0), max(k - len(chosen), 0)).indices
        chosen = torch.cat([chosen, extra])[:k]
    return torch.sort(chosen).values


def pick_by_class(weights: torch.Tensor, k: int, classes: torch.Tensor, shares: torch.Tensor,
                  generator: torch.Generator) -> torch.Tensor:
    """:func:`pick` within each class of ``classes``: class ``c`` gets ``k * shares[c]`` rows
    rounded systematically (``floor(k S_c + u) - floor(k S_{c-1} + u)``, one uniform ``u``: the
    counts sum to ``k`` and each is right in expectation, a single row too), or all its pool
    rows where it has fewer (the rest go to the others). The kept label rate is then the drawn
    one, not whatever the weights of the other tables left of it."""
    u = float(torch.rand((), generator=generator, dtype=torch.float64))
    edges = torch.floor(torch.cat([shares.new_zeros(1), torch.cumsum(shares.double(), 0)]) * k + u)
    want = (edges[1:] - edges[:-1]).long()
    want[-1] += k - int(want.sum())  # shares summing to 1 within rounding
    have = torch.bincount(classes, minlength=len(shares))[:len(shares)]
    want = torch.minimum(want, have)
    while int(want.sum()) < k:  # a class short of rows: its places go to the classes with most rows left
        room = (have - want).double()
        want[int(torch.argmax(room))] += 1
    out = []
    for c in range(len(shares)):
        if want[c] > 0:
            idx = (classes == c).nonzero().flatten()
            out.append(idx[pick(weights[idx], int(want[c]), generator)])
    return torch.sort(torch.cat(out)).values


def quantile_map(values: torch.Tensor, target: torch.Tensor, column: MarginalColumn,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Encoded values of one numeric column moved, in rank order, onto the ``target`` bin
    probabilities: the ``i``-th smallest of ``m`` goes to the target's quantile ``(i + U_i) / m``
    (``U_i`` uniform from ``generator``; 0.5 without one): stratified, so a batch matches the
    target to within one sample per bin, and random, so a small batch (one sample) is still a
    draw from the target rather than its median.
    Within a bin of a continuous column a value takes the same quantile of the model's own values
    in that bin (so values the model puts on a few points stay on them), linearly where the model
    put fewer than :data:`WITHIN_MIN` values there and fewer than the rows mapped there; a whole-valued column's bin is its value. The order of the samples is kept, so the
    column's relations to the others stay the model's."""
    m = len(values)
    order = torch.argsort(values, stable=True)
    jitter = torch.full((m,), 0.5, dtype=torch.float64) if generator is None else \
        torch.rand(m, generator=generator, dtype=torch.float64)
    u = (torch.arange(m, dtype=torch.float64) + jitter) / m
    cdf = torch.cumsum(target, 0)
    cdf = cdf / cdf[-1]
    b = torch.searchsorted(cdf, u).clamp(max=column.bins - 1)
    below = torch.where(b > 0, cdf[(b - 1).clamp(min=0)], torch.zeros_like(u))
    inside = ((u - below) / target[b].clamp(min=1e-12)).clamp(0.0, 1.0)
    if column.whole:
        pos = b.double() / (column.bins - 1)  # the bin's whole value, 0..1 over the range
    else:
        own = (values.double().clamp(-1.0, 1.0) + 1.0) / 2.0 * column.bins
        own_bin = (own + EDGE_SLACK).floor().clamp(max=column.bins - 1)  # as MarginalColumn.codes bins
        for k in torch.unique(b).tolist():
            there = (own[own_bin == k] - k).clamp(min=0.0)
            rows = b == k
            # Few model values taking many more rows would pile the rows onto them; as many values
            # as rows (a small batch) pile nothing, so a point the model puts values on stays put.
            if len(there) >= min(WITHIN_MIN, int(rows.sum())):
                inside[rows] = torch.quantile(there, inside[rows])
        # kept off a bin's upper edge, which counts in the next bin (the last bin's is the range's end)
        top = torch.where(b < column.bins - 1, torch.full_like(inside, 1.0 - 2.0 * EDGE_SLACK), torch.ones_like(inside))
        pos = (b.double() + torch.minimum(inside, top)) / column.bins
    out = torch.empty(m, dtype=torch.float64)
    out[order] = 2.0 * pos - 1.0
    return out.to(values.dtype)


def shrunk_pair_target(counts: torch.Tensor, noise_std: float, records: int, pool: torch.Tensor) -> torch.Tensor:
    """A pair table's target: the released (noisy) ``counts`` shrunk towards the pool's own
    cell shares ``pool`` by as much as the noise explains of their difference (positive-part
    James-Stein: ``lambda = 1 - cells * noise_std^2 / ||counts - n pool||^2``), then projected by
    :func:`simplex`. A sparse table the model smeared (the difference far above the noise) comes
    out as released; a dense one the model already matches stays the model's."""
    c = counts.double()
    own = records * pool.double()
    diff = c - own
    energy = float(diff.square().sum())
    lam = 1.0 if noise_std <= 0 else max(0.0, 1.0 - len(c) * noise_std ** 2 / max(energy, 1e-300))
    return simplex(own + lam * diff, records)


class MarginalFit:
    """The correction of one run: ``keep(x, y, m, generator)`` -> the indices of the ``m``
    pool rows to keep."""

    def __init__(self, run) -> None:
        self.layout = marginal_layout(run.schema)
        self.marginals = run.marginals
        self.records = int(run.marginals["records"])
        self.pairs = pair_layout(run.schema) if "pair_counts" in run.marginals else []
        self.pair_counts = [torch.tensor(c, dtype=torch.float64) for c in run.marginals.get("pair_counts", [])]
        self.pair_std = float(run.marginals.get("pair_noise_std", 0.0))
        self.label_prior = None if run.label_prior is None else torch.tensor(run.label_prior, dtype=torch.float64)

    def keep(self, x: torch.Tensor, y: torch.Tensor | None, m: int, generator: torch.Generator,
             move: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``m`` rows of the pool ``x`` to keep, and those rows with every numeric column
        quantile-mapped onto its target (``move=False``: the rows as generated)."""
        flat = x.reshape(len(x), -1)
        counts = [torch.tensor(c, dtype=torch.float64) for c in self.marginals["counts"]]

        shares = pool_shares(flat, self.layout, counts, self.records, float(self.marginals["noise_std"]))
        targets = column_targets(self.marginals, self.records, shares, len(flat))
        pairs = [(t, c) for t, c in zip(self.pairs, self.pair_counts) if t.second is not None or y is not None]
        parents: dict = {}
        if move and pairs:
            # The pair tables are met where the numbers will end up: first every number of the
            # pool is mapped onto its marginal (the raw model's bins are far off them), then
            # along the tree of the pairs furthest from their targets, within its parent's bins.
            flat = self._move(flat.clone(), y, targets, {}, generator)
            pair_targets, misfit = self._pair_targets(flat, y, pairs, targets)
            parents = condition_tree(self.layout, pair_targets, misfit)
            flat = self._move(flat, y, targets, parents, generator, only_tree=True)
        codes = [c.codes(flat) for c in self.layout]
        # numbers that will be quantile-mapped need no weight (and a target the pool cannot
        # meet would only distort the other columns' weights)
        # The pair tables first: the last tables of each raking round are met best, and a pair
        # table the pool cannot meet (a model that never makes some joint bins) must not cost
        # the columns' own marginals or the label's.
        chosen = [i for i, c in enumerate(self.layout) if not (move and c.numeric)]
        codes_all, targets_all = [], []
        for t, target in self._pair_targets(flat, y, pairs, targets)[0]:
            codes_all.append(t.codes(flat, y))
            targets_all.append(target)
        codes_all += [codes[i] for i in chosen]
        targets_all += [targets[i] for i in chosen]
        if y is not None and self.label_prior is not None:
            codes_all.append(y.long())
            targets_all.append(self.label_prior / self.label_prior.sum())
        weights = rake(codes_all, targets_all) if codes_all else torch.full((len(flat),), 1.0 / len(flat),
                                                                            dtype=torch.float64)
        if y is not None and self.label_prior is not None:  # the label rate as drawn, whatever the weights
            rows = pick_by_class(weights, m, y.long(), self.label_prior / self.label_prior.sum(), generator)
        else:
            rows = pick(weights, m, generator)
        kept = flat[rows].clone()
        if move:  # once more on the kept batch: stratified, so that it meets each target to a sample a bin
            kept = self._move(kept, None if y is None else y[rows], targets, parents, generator)
        return rows, kept.reshape((m,) + tuple(x.shape[1:]))

    def _pair_targets(self, flat: torch.Tensor, y: torch.Tensor | None, pairs: list,
                      targets: list[torch.Tensor]) -> tuple[list, list[float]]:
        """Each pair's target (:func:`shrunk_pair_target` towards the pool ``flat``, then
        raked onto the 1-way targets of its two columns, which are less noisy), and how far the
        pool's table is from it (total variation)."""
        index = {c.name: i for i, c in enumerate(self.layout)}
        out, misfit = [], []
        for t, counts in pairs:
            pool = torch.bincount(t.codes(flat, y), minlength=t.cells).double() / len(flat)
            target = shrunk_pair_target(counts, self.pair_std, self.records, pool)
            rows_t = self._margin(t.first, index, targets)
            cols_t = self.label_prior / self.label_prior.sum() if t.second is None and self.label_prior is not None \
                else (None if t.second is None else self._margin(t.second, index, targets))
            target = fit_margins(target.view(t.first.bins, -1), rows_t, cols_t).flatten()
            out.append((t, target))
            misfit.append(0.5 * float((target - pool).abs().sum()))
        return out, misfit

    def _margin(self, column: MarginalColumn, index: dict, targets: list[torch.Tensor]) -> torch.Tensor:
        """A pair column's 1-way target in its (coarse) bins."""
        i = index[column.name]
        own = self.layout[i]
        if own.bins == column.bins:
            return targets[i]
        values = torch.arange(own.bins, dtype=torch.float64) / (own.bins - 1)  # a whole column's values
        coarse = (values * column.bins).floor().long().clamp(max=column.bins - 1)
        return torch.zeros(column.bins, dtype=torch.float64).index_add_(0, coarse, targets[i])

    def _move(self, flat: torch.Tensor, y: torch.Tensor | None, targets: list[torch.Tensor], parents: dict,
              generator: torch.Generator, only_tree: bool = False) -> torch.Tensor:
        """Every number of ``flat`` quantile-mapped: within its parent's bins where
        ``parents`` names one (in the tree's order, so a parent is final first), else onto its
        1-way target (``only_tree``: the tree's numbers alone)."""
        index = {c.name: i for i, c in enumerate(self.layout)}
        for name, (t, target) in parents.items():
            i = index[name]
            flat[:, self.layout[i].start] = conditional_map(flat, y, t, target, self.layout[i], targets[i], generator)
        if not only_tree:
            for i, c in enumerate(self.layout):
                if c.numeric and c.name not in parents:
                    flat[:, c.start] = quantile_map(flat[:, c.start], targets[i], c, generator)
        return flat


def fit_margins(table: torch.Tensor, rows: torch.Tensor | None, cols: torch.Tensor | None,
                rounds: int = RAKING_ROUNDS) -> torch.Tensor:
    """``table`` (probabilities ``[a, b]``) raked so that its row and column sums match ``rows``
    and ``cols`` (either None: left as it is); cells it holds at 0 stay 0."""
    t = table.double().clone()
    for _ in range(rounds if rows is not None or cols is not None else 0):
        for axis, want in ((1, rows), (0, cols)):
            if want is None:
                continue
            have = t.sum(axis)
            factor = torch.where(have > 0, want / have.clamp(min=1e-300), torch.zeros_like(want))
            t = t * (factor[:, None] if axis == 1 else factor[None, :])
    return t / t.sum() if t.sum() > 0 else table.double()


#: A number is mapped within the bins of another column (:func:`condition_tree`) only where the
#: pool's pair table is at least this far (total variation) from the pair's target.
CONDITION_MISFIT = 0.05


def condition_tree(layout: list[MarginalColumn], pair_targets: list, misfit: list[float]) -> dict:
    """Which numeric column to move within the bins of which other one: ``{name: (pair, target)}``.

    Greedy, as a maximum spanning tree grows: the categorical columns and the label stay as
    picked; then, repeatedly, the numeric column not yet placed whose pair with a placed column
    is furthest from its target (at least :data:`CONDITION_MISFIT`) is mapped within that
    column's bins, and is placed. Each number has at most one parent, so the map of one never
    undoes another's. Where none is far off, the numbers get their 1-way map."""
    numeric = {c.name for c in layout if c.numeric}
    placed = {c.name for c in layout if not c.numeric} | {"label"}
    parents: dict = {}
    while numeric - set(parents):
        best = None
        for (t, target), far in zip(pair_targets, misfit):
            a, b = t.first.name, "label" if t.second is None else t.second.name
            for child, parent in ((a, b), (b, a)):
                if child in numeric and child not in parents and parent in placed and far >= CONDITION_MISFIT \
                        and (best is None or far > best[0]):
                    best = (far, child, t, target)
        if best is None:
            break
        _, child, t, target = best
        parents[child] = (t, target)
        placed.add(child)
    return parents


def conditional_map(kept: torch.Tensor, y: torch.Tensor | None, pair, target: torch.Tensor,
                    column: MarginalColumn, fallback: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Numeric ``column`` of ``kept`` quantile-mapped, within each bin of the pair's other
    column, onto the pair target's conditional distribution in that bin (:func:`quantile_map`,
    so the order of the values in each bin stays the model's); a bin whose target row is empty
    gets the column's 1-way ``fallback``."""
    first_is_child = pair.first.name == column.name
    col = pair.first if first_is_child else pair.second
    other = pair.second if first_is_child else pair.first
    k_other = pair.label_bins if other is None else other.bins
    table = target.view(pair.first.bins, -1)
    table = table.T if first_is_child else table  # [other's bins, child's bins]
    codes = y.long() if other is None else other.codes(kept)
    values = kept[:, col.start].clone()
    for k in range(k_other):
        rows = (codes == k).nonzero().flatten()
        if not len(rows):
            continue
        row = table[k]
        if row.sum() > 0:
            values[rows] = quantile_map(values[rows], row / row.sum(), col, generator)
        else:
            values[rows] = quantile_map(values[rows], fallback, column, generator)
    return values


__all__ = ["MarginalFit", "OVERSAMPLE", "WITHIN_MIN", "RAKING_ROUNDS", "WEIGHT_CAP", "column_targets", "pick", "quantile_map",
           "pick_by_class", "rake", "shrunk_pair_target", "simplex", "condition_tree", "conditional_map", "fit_margins",
           "CONDITION_MISFIT"]
