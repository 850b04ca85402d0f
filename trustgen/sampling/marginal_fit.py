"""Samples corrected towards the run's 1-way marginals, by choosing among more of them.

For every batch of ``m`` samples the sampler draws a pool of :data:`OVERSAMPLE` ``* m``, weighs
the pool so that its weighted 1-way marginals (each categorical column's, the label's, and
where values may not move the numbers' bins) match the run's (:mod:`trustgen.privacy.marginal_histogram`), and keeps ``m`` distinct samples drawn
in proportion to those weights. Every kept sample is one the model generated whole; then each
numeric column of the kept batch is moved, in rank order, onto its target marginal
(:func:`quantile_map`): values go where the model rarely puts them, and the order of the
samples in every column, hence the relations between columns, stays the model's. (Where an
output or noise hook has read the samples, a constraint's flag or a watermark's key, values are
not moved: only the choice of samples corrects them.)

The weights come from raking (iterative proportional fitting, :data:`RAKING_ROUNDS` rounds
over the columns), capped at :data:`WEIGHT_CAP` times the mean so that a few samples cannot
stand in for a whole bin the model rarely produces.

Under DP the stored counts carry Gaussian noise; the target of each column is the nearest
distribution of the ``n`` training records to them (:func:`simplex`: bins whose counts are
noise alone come out empty). ``n`` is public in the privacy plan. All of this is
post-processing of the DP release and of the DP model's own samples: it costs no privacy.

A column is corrected only where the noise is expected to move its marginal by at most
:data:`~trustgen.privacy.marginal_histogram.NOISE_LIMIT` (total variation, from the public
noise and record count); elsewhere the model's own marginal stands.

The label is raked to the run's label prior (which labels are drawn from anyway). Explicit
labels (a class, or one per sample) switch the correction off: the pool could not keep them.
"""

from __future__ import annotations

import torch

from trustgen.privacy.marginal_histogram import NOISE_LIMIT, MarginalColumn, expected_noise_tv, marginal_layout

OVERSAMPLE = 4
RAKING_ROUNDS = 25
WEIGHT_CAP = 20.0


def column_targets(marginals: dict, records: int) -> list[torch.Tensor]:
    """Each column's target probabilities: its stored counts projected by :func:`simplex`."""
    return [simplex(torch.tensor(counts, dtype=torch.float64), records) for counts in marginals["counts"]]


def simplex(counts: torch.Tensor, records: int) -> torch.Tensor:
    """The probabilities closest (in L2) to noisy ``counts`` of ``records`` records: the counts
    lowered by one common amount, those below 0 set to 0, so that they sum to ``records``. Under
    noise this empties the bins whose counts are noise alone, where setting negatives to 0 and
    normalising keeps every positive draw."""
    c = counts.double()
    if records <= 0 or not bool((c > 0).any()):
        return torch.full_like(c, 1.0 / len(c))
    s = torch.sort(c, descending=True).values
    tau = (torch.cumsum(s, 0) - records) / torch.arange(1, len(s) + 1, dtype=torch.float64)
    k = int((s > tau).nonzero().max())  # the largest k with s_k above its threshold
    p = (c - tau[k]).clamp(min=0.0)
    return p / p.sum()


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
    """``k`` distinct indices drawn in proportion to ``weights`` (the exponential-keys method:
    the ``k`` smallest ``E_i / w_i``), in increasing order."""
    e = -torch.log(torch.rand(len(weights), generator=generator, dtype=torch.float64).clamp(min=1e-300))
    if not bool(torch.isfinite(weights).all()) or not weights.sum() > 0:
        weights = torch.ones_like(weights)  # never a fixed choice: equal weights instead
    keys = torch.where(weights > 0, e / weights.clamp(min=1e-300), torch.full_like(e, float("inf")))
    return torch.sort(torch.topk(keys, k, largest=False).indices).values


def quantile_map(values: torch.Tensor, target: torch.Tensor, column: MarginalColumn,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Encoded values of one numeric column moved, in rank order, onto the ``target`` bin
    probabilities: the ``i``-th smallest of ``m`` goes to the target's quantile ``(i + U_i) / m``
    (``U_i`` uniform from ``generator``; 0.5 without one): stratified, so a batch matches the
    target to within one sample per bin, and random, so a small batch (one sample) is still a
    draw from the target rather than its median.
    Within a bin of a continuous column a value takes the same quantile of the model's own values
    in that bin (so values the model puts on a few points stay on them), linearly where the model
    put none; a whole-valued column's bin is its value. The order of the samples is kept, so the
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
        own_bin = own.floor().clamp(max=column.bins - 1)
        for k in torch.unique(b).tolist():
            there = own[own_bin == k] - k
            if len(there):
                rows = b == k
                inside[rows] = torch.quantile(there, inside[rows])
        pos = (b.double() + inside) / column.bins
    out = torch.empty(m, dtype=torch.float64)
    out[order] = 2.0 * pos - 1.0
    return out.to(values.dtype)


class MarginalFit:
    """The correction of one run: ``keep(x, y, m, generator)`` -> the indices of the ``m``
    pool rows to keep."""

    def __init__(self, run) -> None:
        self.layout = marginal_layout(run.schema)
        self.marginals = run.marginals
        self.records = int(run.marginals["records"])
        std = float(run.marginals["noise_std"])
        self.reliable = [i for i, c in enumerate(self.layout)
                         if expected_noise_tv(c.bins, std, self.records) <= NOISE_LIMIT]
        self.label_prior = None if run.label_prior is None else torch.tensor(run.label_prior, dtype=torch.float64)

    def keep(self, x: torch.Tensor, y: torch.Tensor | None, m: int, generator: torch.Generator,
             move: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``m`` rows of the pool ``x`` to keep, and those rows with every numeric column
        quantile-mapped onto its target (``move=False``: the rows as generated)."""
        flat = x.reshape(len(x), -1)
        codes = [c.codes(flat) for c in self.layout]
        targets = column_targets(self.marginals, self.records)
        # numbers that will be quantile-mapped need no weight (and a target the pool cannot
        # meet would only distort the other columns' weights); a column whose noise exceeds the
        # limit keeps the model's own marginal
        chosen = [i for i in self.reliable if not (move and self.layout[i].numeric)]
        codes_all, targets_all = [codes[i] for i in chosen], [targets[i] for i in chosen]
        if y is not None and self.label_prior is not None:
            codes_all.append(y.long())
            targets_all.append(self.label_prior / self.label_prior.sum())
        weights = rake(codes_all, targets_all) if codes_all else torch.full((len(flat),), 1.0 / len(flat),
                                                                            dtype=torch.float64)
        rows = pick(weights, m, generator)
        kept = flat[rows].clone()
        if move:
            for i in self.reliable:
                c, t = self.layout[i], targets[i]
                if c.numeric:
                    kept[:, c.start] = quantile_map(kept[:, c.start], t, c, generator)
        return rows, kept.reshape((m,) + tuple(x.shape[1:]))


__all__ = ["MarginalFit", "OVERSAMPLE", "RAKING_ROUNDS", "WEIGHT_CAP", "column_targets", "pick", "quantile_map",
           "rake", "simplex"]
