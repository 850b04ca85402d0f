"""Detection as a hypothesis test: counts of keyed agreements, their exact p-values, decisions.

Every detector here counts, per sample, how many of its ``n`` keyed trials agree with the key
(a sign, a lattice residual, ...). Under the null "not watermarked with this key" each trial
agrees with probability ``p0`` independently, *over the draw of the key*: the key's bits are
uniform and independent of any content made without it. So for any such content the count is
Binomial(n, p0) and the p-value ``P(Binomial(n, p0) >= count)`` is exact, with no calibration
and no assumption about the content. A file's p-value pools its samples' counts (the sum of
independent binomials with one ``p0`` is binomial).

Example:
    >>> d = Detection.from_counts("demo", "0123456789abcdef", np.array([64, 30]), 64, 0.5, fpr=1e-6)
    >>> d.detected.tolist(), bool(d.p_values[0] < 1e-18)
    ([True, False], True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trustgen.errors import ConfigError


def binomial_p_value(count, n, p0: float) -> np.ndarray:
    """``P(Binomial(n, p0) >= count)``, elementwise, exact (scipy's regularised incomplete beta)."""
    from scipy.stats import binom

    count = np.asarray(count)
    return np.asarray(binom.sf(count - 1, n, p0), dtype=np.float64)


def check_fpr(fpr: float) -> float:
    """A false-positive rate in (0, 0.5]."""
    if isinstance(fpr, bool) or not isinstance(fpr, (int, float)) or not 0 < fpr <= 0.5:
        raise ConfigError(f"the false-positive rate must be in (0, 0.5], got {fpr!r}")
    return float(fpr)


class Decisions:
    """The decisions of a test result with ``p_values`` (per sample), ``p_value`` (the file's)
    and ``fpr``."""

    p_values: np.ndarray
    p_value: float
    fpr: float

    @property
    def detected(self) -> np.ndarray:
        """Per sample: watermarked with this key, at false-positive rate ``fpr``."""
        return self.p_values <= self.fpr

    @property
    def file_detected(self) -> bool:
        return bool(self.p_value <= self.fpr)


@dataclass(frozen=True)
class Detection(Decisions):
    """The outcome of testing samples for one key.

    Attributes:
        method: the watermark tested (``"latent"``, ``"dither"``, ``"table"``).
        key_id: the id of the key tested (never the key).
        counts: per sample, the keyed trials that agree.
        trials: keyed trials per sample (``n``; an array when samples differ, e.g. the dither
            test does not count values at the ends of the range, which it leaves unmarked).
        p0: the chance that a trial agrees under the null.
        p_values: per sample, ``P(Binomial(trials, p0) >= count)``.
        p_value: the whole file's p-value (all counts pooled).
        fpr: the false-positive rate the decisions are taken at.
    """

    method: str
    key_id: str
    counts: np.ndarray
    trials: int | np.ndarray
    p0: float
    p_values: np.ndarray
    p_value: float
    fpr: float

    @classmethod
    def from_counts(cls, method: str, key_id: str, counts: np.ndarray, trials, p0: float, *,
                    fpr: float) -> "Detection":
        counts = np.asarray(counts, dtype=np.int64)
        per_sample = np.broadcast_to(np.asarray(trials, dtype=np.int64), counts.shape)
        pooled = float(binomial_p_value(counts.sum(), per_sample.sum(), p0)) if len(counts) else 1.0
        trials = int(trials) if np.ndim(trials) == 0 else per_sample.copy()
        return cls(method, key_id, counts, trials, float(p0), binomial_p_value(counts, per_sample, p0), pooled,
                   check_fpr(fpr))

    def to_dict(self, per_sample: bool = True) -> dict:
        trials = self.trials if np.ndim(self.trials) == 0 else int(np.max(self.trials, initial=0))
        out = {"method": self.method, "key_id": self.key_id, "trials_per_sample": trials, "null_p": self.p0,
               "fpr": self.fpr, "samples": int(len(self.counts)), "p_value": self.p_value,
               "detected": self.file_detected, "samples_detected": int(self.detected.sum())}
        if per_sample:
            out["per_sample"] = [{"score": int(c), "p_value": float(p), "detected": bool(p <= self.fpr)}
                                 for c, p in zip(self.counts, self.p_values)]
        return out
