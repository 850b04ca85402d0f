"""DP 1-way marginals of the feature columns: one Gaussian histogram, for correcting samples.

A deep model trained with DP-SGD gets the shape of each column only roughly right (a class of
4% comes out at 20%, values on a few points come out smeared). What a marginal method (MST,
AIM) measures first, the count of every column's values, is cheap under DP when all columns
are counted at once; sampling then corrects the model's samples towards it
(:mod:`trustgen.sampling.marginal_fit`), which is post-processing and costs nothing more.

The bins are public, read from the schema only (:func:`marginal_layout`): a numeric column's
declared range in :data:`BINS` equal bins (an integer column with at most :data:`WHOLE_VALUES`
whole values: one bin per value), a categorical column's declared categories. The label is not
counted here: :mod:`trustgen.privacy.label_histogram` releases it.

Under add/remove-one-record adjacency one record adds 1 to one bin of each of the ``d``
columns, so the vector of all counts has L2 sensitivity ``sqrt(d)``, and adding
``N(0, (sigma * sqrt(d))^2)`` to every count is the Gaussian mechanism with noise multiplier
``sigma``: to the accountant one segment ``(sigma, 1.0, 1)``, composed with DP-SGD and the
label histogram (:func:`trustgen.privacy.plan.plan_privacy` calibrates ``sigma`` so the
histogram alone spends ``marginal_budget * epsilon``).

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


#: A column is corrected towards its released marginal only where the noise is expected to move
#: that marginal by at most this much (total variation): beyond it the noisy marginal is worse
#: than what a model learns (measured: breast_cancer, 398 records, epsilon 0.3 on 30 columns,
#: expected 0.66, and correcting towards it took the TSTR ROC AUC from 0.92 to 0.78).
NOISE_LIMIT = 0.05


def expected_noise_tv(bins: int, noise_std: float, records: int) -> float:
    """The expected total-variation distance that Gaussian noise of ``noise_std`` on each of
    ``bins`` counts puts between ``records`` records' marginal and its noisy estimate (before the
    projection): ``0.5 * bins * E|N| / records``, ``E|N| = noise_std * sqrt(2 / pi)``. Public:
    it reads the plan only."""
    return 0.5 * bins * noise_std * math.sqrt(2.0 / math.pi) / max(records, 1)


def worth_releasing(bins: list[int], noise_multiplier: float, records: int) -> bool:
    """Whether a release with this noise would correct at least one column (:data:`NOISE_LIMIT`);
    when it would not, the plan gives its share back to training."""
    std = noise_multiplier * math.sqrt(len(bins))
    return any(expected_noise_tv(k, std, records) <= NOISE_LIMIT for k in bins)


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
        return (u * self.bins).floor().long().clamp(max=self.bins - 1)


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


def marginal_counts(x: torch.Tensor, layout: list[MarginalColumn]) -> list[torch.Tensor]:
    """Each column's bin counts (float64) of this rank's encoded rows, summed over all ranks."""
    return [label_counts(c.codes(x), c.bins) for c in layout]


def noisy_marginals(counts: list[torch.Tensor], noise_multiplier: float, rng: SecureRandom, records: int) -> dict:
    """The release: every count plus ``sigma * sqrt(d) * z`` (one draw at
    :data:`MARGINAL_NOISE_ADDRESS`), as :func:`marginals_record` stores it. The noisy counts are
    kept as they are (some below 0): what sampling makes of them is post-processing."""
    sigma = check_noise_multiplier(noise_multiplier)
    sizes = [c.numel() for c in counts]
    z = rng.normal((sum(sizes),), *MARGINAL_NOISE_ADDRESS).to(torch.float64)
    std = sigma * math.sqrt(len(counts))
    flat = torch.cat([c.detach().cpu().to(torch.float64) for c in counts]) + std * z
    return marginals_record(list(flat.split(sizes)), std, records)


def exact_marginals(x: torch.Tensor, layout: list[MarginalColumn]) -> dict:
    """The empirical marginals of all of ``x``, for a run trained without DP (which releases
    nothing private by design: its model is not private either). Every process holds all of
    ``x`` then, so nothing is summed over ranks."""
    counts = [torch.bincount(c.codes(x), minlength=c.bins).to(torch.float64) for c in layout]
    return marginals_record(counts, 0.0, len(x))


def marginals_record(counts: list[torch.Tensor], noise_std: float, records: int) -> dict:
    """What a run stores: per column its (noisy) bin counts, the noise's standard deviation on
    each count and the number of training records (both public: from the plan; 0 noise for
    exact counts)."""
    return {"counts": [[float(v) for v in c.cpu().tolist()] for c in counts], "noise_std": float(noise_std),
            "records": int(records)}


__all__ = ["BINS", "MARGINAL_NOISE_ADDRESS", "NOISE_LIMIT", "WHOLE_VALUES", "expected_noise_tv", "worth_releasing", "MarginalColumn", "exact_marginals", "marginal_counts",
           "marginal_layout", "marginals_record", "noisy_marginals"]
