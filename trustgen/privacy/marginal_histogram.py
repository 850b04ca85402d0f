"""DP 1-way and 2-way marginals of the columns: one Gaussian histogram, for correcting samples.

A deep model trained with DP-SGD gets the shape of each column only roughly right (a class of
4% comes out at 20%, values on a few points come out smeared). What a marginal method (MST,
AIM) measures first, the count of every column's values, is cheap under DP when all columns
are counted at once; sampling then corrects the model's samples towards it
(:mod:`trustgen.sampling.marginal_fit`), which is post-processing and costs nothing more.

The bins are public, read from the schema only (:func:`marginal_layout`): a numeric column's
declared range in :data:`BINS` equal bins (an integer column with at most :data:`WHOLE_VALUES`
whole values: one bin per value), a categorical column's declared categories. The label is not
counted here: :mod:`trustgen.privacy.label_histogram` releases it.

A deep model trained with DP-SGD also smears the relations between columns that sit on a few
joint points (an insurance plan fixes four columns at once: on randhie the VAE's 2-way distance of
such pairs was 0.2-0.4 where the rest sat near 0.03). So, where the table is narrow enough
(:data:`PAIR_COLUMNS`) and the noise small enough (:func:`pairs_worth_releasing`), the same
release also counts the 2-way table of every pair of columns, the label among them
(:func:`pair_layout`: numbers in :data:`BINS` bins), each count weighted by
:data:`PAIR_WEIGHT`.

Under add/remove-one-record adjacency one record adds 1 to one bin of each of the ``d``
columns and ``PAIR_WEIGHT`` to one cell of each of the ``P`` pair tables, so the vector of all
counts has L2 sensitivity ``sqrt(d + PAIR_WEIGHT^2 P)``, and adding
``N(0, (sigma * sqrt(d + PAIR_WEIGHT^2 P))^2)`` to every count is the Gaussian mechanism with
noise multiplier ``sigma``: to the accountant one segment ``(sigma, 1.0, 1)``, composed with
DP-SGD and the label histogram (:func:`trustgen.privacy.plan.plan_privacy` calibrates ``sigma``
so the histogram alone spends ``marginal_budget * epsilon``, with or without pairs).

The noise comes from the run's secret source at :data:`MARGINAL_NOISE_ADDRESS` (the same on
every rank, counts summed over ranks first; a resumed run recomputes the same release). After
the noise the counts are stored as they are; what sampling makes of them (negatives to 0,
shrinkage towards the model's own marginal where the noise dominates) is post-processing.

Example:
    >>> from trustgen.data.schema import CategoricalColumn, NumericColumn, TabularSchema
    >>> schema = TabularSchema([NumericColumn("age", 0, 100), NumericColumn("kids", 0, 5, integer=True),
    ...                         CategoricalColumn("site", ("a", "b"))])
    >>> [(c.name, c.bins) for c in marginal_layout(schema)]
    [('age', 10), ('kids', 6), ('site', 2)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from trustgen.data.encoders import make_encoder
from trustgen.data.schema import ImageSchema, NumericColumn, Schema
from trustgen.errors import DataError
from trustgen.privacy.accounting import check_noise_multiplier
from trustgen.privacy.label_histogram import label_counts
from trustgen.privacy.secure_random import SecureRandom

#: Equal-width bins of a numeric column's declared range: every bin is a count the noise lands
#: on, so more bins mean more noise per column (10 bins of a 2% range each already resolve what
#: a cross-tabulation shows).
BINS = 10
#: An integer column with at most this many whole values gets one bin per value (values on a few
#: points, such as counts or banded ages, stay on them).
WHOLE_VALUES = 20
#: Where the histogram's noise is drawn in the secret keystream (one release per run).
MARGINAL_NOISE_ADDRESS: tuple[str, int, int] = ("marginal-histogram", 0, 0)
#: Pair tables are counted only for tables of at most this many columns (features and label):
#: ``C(16, 2) = 120`` tables; beyond, the noise each one gets leaves little to correct with.
PAIR_COLUMNS = 16
#: Each pair-table count enters the release times this weight: with weight ``w`` its noise is
#: ``1/w`` times the 1-way counts' (the 1-way counts keep most of their precision; the pair
#: tables that matter are sparse, where the projection onto ``n`` records removes most noise).
PAIR_WEIGHT = 0.5
#: Pair tables are released only where the noise is expected to move a pair table by at most
#: this much on average (total variation, before the projection, which removes most of it from
#: a sparse table). Set between two measured tables at epsilon 1: randhie (expected 0.165) gained
#: (2-way distance 0.055 -> 0.031-0.034), rare (expected 0.221, where the model already pairs the
#: columns well) lost (0.062 -> 0.063-0.073, from the 1-way counts' larger noise).
PAIR_NOISE_LIMIT = 0.2
#: A number within this fraction of a bin's width below the bin's lower edge counts in that bin.
#: Values are binned on their float32 encoding, and a value on an edge (2.5 in 0-25 cut in ten,
#: 50 in 20-80 cut in ten) encodes a few 1e-8 below it; binned as it lies, it would be counted
#: one bin lower than the schema (and the 2-way distances, on the decoded float64 values) puts
#: it. Measured on statsmodels' fair table, where 32% of the rows have 2.5 years of marriage: the
#: marginal fit reproduced the shifted bin, and the column's 1-way distance was 0.36 instead of
#: 0.05. The encoding moves a value by at most 6e-8 of the range, 6e-7 of a bin of 10.
EDGE_SLACK = 1e-5


#: A release is made only where the noise is expected to move the columns' marginals by at most
#: this much on average (total variation, before any projection). Sampling combines each noisy marginal
#: with the model's own (:mod:`trustgen.sampling.marginal_shrinkage`), which removes much of the
#: noise, but not all: measured on breast_cancer at epsilon 1 (398 records, 30 columns, DP-VAE,
#: split seeds 0-2, 2-way distance on a holdout), a release expected at 0.76 (share 0.25) left
#: the samples where no release leaves them (0.449 against 0.453) with TSTR lower, one at 0.47
#: (share 0.4) gave 0.345, one at 0.39 (share 0.5) 0.309. (Before that combination the limit was
#: 0.05: a raw noisy marginal expected at 0.66 took the TSTR ROC AUC from 0.92 to 0.78.)
NOISE_LIMIT = 0.4

#: Choosing the share itself (``marginal_budget=None``), the plan spends until the release is
#: this precise (mean expected noise per column, total variation, before any projection), or the
#: largest share it may take. A table with records enough is there at the first share: measured at
#: epsilon 1, fair, rare and randhie (4,456-14,133 records) are at 0.009-0.028 with 0.25 and gain
#: nothing from more, so they keep it. A smaller table is not: anes96 (661 records, 9 columns) is
#: at 0.20 with 0.25, where the DP-VAE's 2-way distance was 0.272 against AIM's 0.209; with 0.5
#: (0.106) it was 0.211-0.214. Set after anes96 was measured, so anes96 is no out-of-sample check
#: of it; 1,000-row draws of fair and randhie are (0.5 and 0.45 taken: 2-way 0.257 -> 0.196 and
#: 0.205 -> 0.142, TSTR no lower; benchmarks/README.md, "Middle-sized tables").
PRECISE_NOISE = 0.1


def expected_noise_tv(bins: int, noise_std: float, records: int) -> float:
    """The expected total-variation distance that Gaussian noise of ``noise_std`` on each of
    ``bins`` counts puts between ``records`` records' marginal and its noisy estimate (before the
    projection): ``0.5 * bins * E|N| / records``, ``E|N| = noise_std * sqrt(2 / pi)``. Public:
    it reads the plan only."""
    return 0.5 * bins * noise_std * math.sqrt(2.0 / math.pi) / max(records, 1)


def noise_stds(columns: int, pairs: int, noise_multiplier: float) -> tuple[float, float]:
    """The noise's standard deviation on a 1-way count and on a pair-table count, for a release
    of ``columns`` 1-way and ``pairs`` pair tables at ``noise_multiplier``."""
    std = noise_multiplier * math.sqrt(columns + PAIR_WEIGHT ** 2 * pairs)
    return std, std / PAIR_WEIGHT


def worth_releasing(bins: list[int], noise_multiplier: float, records: int, pairs: int = 0) -> bool:
    """Whether a release with this noise (``pairs`` pair tables beside the 1-way ones) would
    move the columns' marginals by at most :data:`NOISE_LIMIT` on average; when it would not, the
    plan gives its share back to training (or, choosing the share itself, tries a larger one).
    The mean, not the best column: every column is corrected, and a table of thirty noisy
    numbers is not made worth releasing by one binary column that would be."""
    return bool(bins) and mean_expected_noise(bins, noise_multiplier, records, pairs) <= NOISE_LIMIT


def precise_release(bins: list[int], noise_multiplier: float, records: int) -> bool:
    """Whether a release with this noise is within :data:`PRECISE_NOISE` on average: where the
    plan, choosing the share itself, stops spending more. Public: it reads the plan only."""
    return bool(bins) and mean_expected_noise(bins, noise_multiplier, records) <= PRECISE_NOISE


def mean_expected_noise(bins: list[int], noise_multiplier: float, records: int, pairs: int = 0) -> float:
    """The columns' mean :func:`expected_noise_tv` in a release of their 1-way marginals (and
    ``pairs`` pair tables) at ``noise_multiplier``."""
    std = noise_stds(len(bins), pairs, noise_multiplier)[0]
    return sum(expected_noise_tv(k, std, records) for k in bins) / len(bins)


def pairs_worth_releasing(bins: list[int], cells: list[int], noise_multiplier: float, records: int) -> bool:
    """Whether the pair tables of ``cells`` cells each are worth counting beside the 1-way
    marginals of ``bins``: their mean expected noise within :data:`PAIR_NOISE_LIMIT`, and the
    1-way marginals still worth releasing with them. Public: it reads the plan only."""
    if not cells or not bins:
        return False
    std_pair = noise_stds(len(bins), len(cells), noise_multiplier)[1]
    mean_tv = sum(expected_noise_tv(k, std_pair, records) for k in cells) / len(cells)
    return mean_tv <= PAIR_NOISE_LIMIT and worth_releasing(bins, noise_multiplier, records, len(cells))


@dataclass(frozen=True)
class MarginalColumn:
    """One counted column: its encoded coordinates ``start`` (and ``size`` for a one-hot
    block) and its ``bins``. A number is binned on its encoded value, which spans [-1, 1] over
    the declared range: ``whole`` values (an integer column) get one bin each."""

    name: str
    start: int
    size: int
    bins: int
    numeric: bool
    whole: bool

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """The bin of every row of encoded ``x`` ``[n, dim]`` (values outside the range fall in
        the end bins, as decoding clips them)."""
        if not self.numeric:
            return x[:, self.start:self.start + self.size].argmax(1)
        u = (x[:, self.start].double().clamp(-1.0, 1.0) + 1.0) / 2.0  # 0..1 over the declared range
        if self.whole:  # value low + k for k = 0..bins-1, as decoding rounds it
            return torch.round(u * (self.bins - 1)).long()
        return (u * self.bins + EDGE_SLACK).floor().long().clamp(max=self.bins - 1)  # a value on an edge: above it


def marginal_layout(schema: Schema) -> list[MarginalColumn]:
    """The counted columns of ``schema``: every feature column of a table (none for images)."""
    if isinstance(schema, ImageSchema):
        return []
    out = []
    for b in make_encoder(schema).blocks:
        c = schema.column(b.name)
        if isinstance(c, NumericColumn):
            values = c.high - c.low + 1
            whole = bool(c.integer) and float(c.low).is_integer() and float(c.high).is_integer() and values <= WHOLE_VALUES
            out.append(MarginalColumn(c.name, b.start, 1, int(values) if whole else BINS, True, whole))
        else:
            out.append(MarginalColumn(c.name, b.start, b.size, b.size, False, False))
    return out


@dataclass(frozen=True)
class PairTable:
    """One counted pair of columns: ``first`` a feature column, ``second`` another or None for
    the label (``label_bins`` classes). A cell is ``first's bin * second's bins + second's bin``."""

    first: MarginalColumn
    second: MarginalColumn | None
    label_bins: int = 0

    @property
    def name(self) -> str:
        return f"{self.first.name} & {'label' if self.second is None else self.second.name}"

    @property
    def cells(self) -> int:
        return self.first.bins * (self.label_bins if self.second is None else self.second.bins)

    def codes(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """The cell of every row of encoded ``x`` (with labels ``y`` for a label pair)."""
        if self.second is None:
            if y is None:
                raise DataError(f"the pair table {self.name!r} needs the labels")
            return self.first.codes(x) * self.label_bins + y.long()
        return self.first.codes(x) * self.second.bins + self.second.codes(x)


def _coarse(c: MarginalColumn) -> MarginalColumn:
    """``c`` in at most :data:`BINS` bins for a pair table (a whole-valued column of more values
    falls into equal bins of its range, as the 2-way distances bin it)."""
    return MarginalColumn(c.name, c.start, c.size, BINS, True, False) if c.whole and c.bins > BINS else c


def pair_layout(schema: Schema) -> list[PairTable]:
    """Every pair of ``schema``'s columns (features, and the label if any) whose 2-way table is
    counted: none for images, or beyond :data:`PAIR_COLUMNS` columns. Public: the schema only."""
    columns = [_coarse(c) for c in marginal_layout(schema)]
    classes = 0 if isinstance(schema, ImageSchema) or schema.label is None else int(schema.n_classes or 0)
    if not columns or len(columns) + (classes > 0) > PAIR_COLUMNS or len(columns) + (classes > 0) < 2:
        return []
    out = [PairTable(a, b) for i, a in enumerate(columns) for b in columns[i + 1:]]
    if classes:
        out += [PairTable(a, None, classes) for a in columns]
    return out


def marginal_counts(x: torch.Tensor, layout: list[MarginalColumn]) -> list[torch.Tensor]:
    """Each column's bin counts (float64) of this rank's encoded rows, summed over all ranks."""
    return [label_counts(c.codes(x), c.bins) for c in layout]


def pair_counts(x: torch.Tensor, y: torch.Tensor | None, pairs: list[PairTable]) -> list[torch.Tensor]:
    """Each pair table's cell counts (float64) of this rank's rows, summed over all ranks."""
    return [label_counts(t.codes(x, y), t.cells) for t in pairs]


def noisy_marginals(counts: list[torch.Tensor], noise_multiplier: float, rng: SecureRandom, records: int,
                    pairs: list[torch.Tensor] = ()) -> dict:
    """The release: every 1-way count plus ``std * z`` and every pair count weighted by
    :data:`PAIR_WEIGHT` plus ``std * z`` (``std = sigma * sqrt(d + PAIR_WEIGHT^2 P)``, one draw at
    :data:`MARGINAL_NOISE_ADDRESS`), the pair counts divided back by the weight, as
    :func:`marginals_record` stores them. The noisy counts are kept as they are (some below 0):
    what sampling makes of them is post-processing."""
    sigma = check_noise_multiplier(noise_multiplier)
    pairs = list(pairs)
    sizes = [c.numel() for c in counts] + [c.numel() for c in pairs]
    z = rng.normal((sum(sizes),), *MARGINAL_NOISE_ADDRESS).to(torch.float64)
    std, std_pair = noise_stds(len(counts), len(pairs), sigma)
    flat = torch.cat([c.detach().cpu().to(torch.float64) for c in counts]
                     + [PAIR_WEIGHT * c.detach().cpu().to(torch.float64) for c in pairs]) + std * z
    parts = list(flat.split(sizes))
    return marginals_record(parts[:len(counts)], std, records,
                            [p / PAIR_WEIGHT for p in parts[len(counts):]] if pairs else None, std_pair)


def exact_marginals(x: torch.Tensor, layout: list[MarginalColumn], y: torch.Tensor | None = None,
                    pairs: list[PairTable] = ()) -> dict:
    """The empirical marginals (and pair tables) of all of ``x``, for a run trained without DP
    (which releases nothing private by design: its model is not private either). Every process
    holds all of ``x`` then, so nothing is summed over ranks."""
    counts = [torch.bincount(c.codes(x), minlength=c.bins).to(torch.float64) for c in layout]
    tables = [torch.bincount(t.codes(x, y), minlength=t.cells).to(torch.float64) for t in pairs]
    return marginals_record(counts, 0.0, len(x), tables or None, 0.0)


def marginals_record(counts: list[torch.Tensor], noise_std: float, records: int,
                     pairs: list[torch.Tensor] | None = None, pair_noise_std: float = 0.0) -> dict:
    """What a run stores: per column its (noisy) bin counts, the noise's standard deviation on
    each count and the number of training records (both public: from the plan; 0 noise for
    exact counts), and where pair tables were counted, their cells and noise."""
    out = {"counts": [[float(v) for v in c.cpu().tolist()] for c in counts], "noise_std": float(noise_std),
           "records": int(records)}
    if pairs is not None:
        out["pair_counts"] = [[float(v) for v in c.cpu().tolist()] for c in pairs]
        out["pair_noise_std"] = float(pair_noise_std)
    return out


__all__ = ["BINS", "EDGE_SLACK", "MARGINAL_NOISE_ADDRESS", "NOISE_LIMIT", "PAIR_COLUMNS", "PAIR_NOISE_LIMIT", "PAIR_WEIGHT",
           "PRECISE_NOISE", "WHOLE_VALUES", "MarginalColumn", "PairTable", "exact_marginals", "expected_noise_tv",
           "marginal_counts", "marginal_layout", "marginals_record", "mean_expected_noise", "noise_stds",
           "noisy_marginals", "pair_counts", "pair_layout", "pairs_worth_releasing", "precise_release",
           "worth_releasing"]
