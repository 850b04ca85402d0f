"""Empirical lower bounds on epsilon from membership-inference / canary attacks.

If a mechanism is (epsilon, delta)-DP, every test that guesses "member" vs "non-member" from its
output obeys (Kairouz et al. 2015; used for auditing by Jagielski et al. 2020, Nasr et al. 2021)::

    TPR <= exp(epsilon) * FPR + delta          and          TNR <= exp(epsilon) * FNR + delta

so an attack with true-positive rate TPR and false-positive rate FPR proves

    epsilon >= max( log((TPR - delta) / FPR),  log((1 - delta - FPR) / (1 - TPR)) ).

The rates are only estimated from a finite number of canaries, so we plug in a **lower** confidence
bound on TPR and an **upper** confidence bound on FPR (one-sided Clopper-Pearson, i.e. exact binomial,
each at level ``(1 - confidence) / 2``, so both hold jointly with probability >= ``confidence`` by
the union bound). The result is then a lower bound on the true epsilon with that confidence.

What this is, and is not:

* It is a **lower bound**: a large value proves a privacy bug (or a wrong accountant); a small value
  proves nothing (the attack may simply be weak). It never certifies privacy.
* The bound is capped by the number of canaries: with ``n`` members and ``n`` non-members and a
  perfect attack it is about ``log(n / 3.7)`` at 95% confidence.
* Choosing the decision threshold on the same scores that are then counted
  (:func:`epsilon_lower_bound_from_scores` with ``holdout_fraction=None``) is **optimistic**: the
  maximum over many thresholds is biased upward, and the confidence level no longer holds exactly.
  Pass ``holdout_fraction`` to choose the threshold on one part of the scores and count on the rest.

Example:
    >>> b = epsilon_lower_bound(true_positives=1000, positives=1000, false_positives=0,
    ...                         negatives=1000, delta=1e-5)
    >>> round(b.epsilon_lower_bound, 2)
    5.6
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
from scipy import optimize, stats

from trustgen.errors import PrivacyError

ThresholdSelection = Literal["given", "same_data", "holdout"]


@dataclass(frozen=True)
class AuditBound:
    """An empirical lower bound on epsilon, with the counts behind it.

    Attributes:
        epsilon_lower_bound: max(0, bound); holds with probability >= ``confidence`` unless
            ``optimistic``.
        tpr_lower: Clopper-Pearson lower bound on the attack's true-positive rate.
        fpr_upper: Clopper-Pearson upper bound on the attack's false-positive rate.
        true_positives: Members flagged as members.
        positives: Members (canaries inserted) counted.
        false_positives: Non-members flagged as members.
        negatives: Non-members counted.
        delta: The delta the bound is stated at.
        confidence: Joint confidence of the two binomial bounds.
        threshold: Score threshold used (``score >= threshold`` means "member"), if any.
        threshold_selection: ``"given"`` (counts supplied), ``"same_data"`` (threshold chosen on the
            counted scores: optimistic) or ``"holdout"`` (chosen on separate scores).
    """

    epsilon_lower_bound: float
    tpr_lower: float
    fpr_upper: float
    true_positives: int
    positives: int
    false_positives: int
    negatives: int
    delta: float
    confidence: float
    threshold: float | None = None
    threshold_selection: ThresholdSelection = "given"

    @property
    def optimistic(self) -> bool:
        """True when the threshold was selected on the counted scores (bound biased upward)."""
        return self.threshold_selection == "same_data"


# ------------------------------------------------------------------------------------------------
# Clopper-Pearson and the DP hypothesis-testing bound (vectorised)
# ------------------------------------------------------------------------------------------------


def _cp_lower(k: np.ndarray, n: np.ndarray, alpha: float) -> np.ndarray:
    """One-sided lower confidence bound on a binomial proportion (exact, level 1 - alpha)."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore"):
        lo = stats.beta.ppf(alpha, k, n - k + 1)
    return np.where(k <= 0, 0.0, lo)


def _cp_upper(k: np.ndarray, n: np.ndarray, alpha: float) -> np.ndarray:
    """One-sided upper confidence bound on a binomial proportion (exact, level 1 - alpha)."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore"):
        hi = stats.beta.ppf(1.0 - alpha, k + 1, n - k)
    return np.where(k >= n, 1.0, hi)


def _dp_bound(tpr: np.ndarray, fpr: np.ndarray, delta: float) -> np.ndarray:
    """max(0, log((TPR - delta)/FPR), log((1 - delta - FPR)/(1 - TPR))) elementwise."""
    tpr = np.asarray(tpr, dtype=float)
    fpr = np.asarray(fpr, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        num1 = tpr - delta
        t1 = np.where((num1 > 0) & (fpr > 0), np.log(np.maximum(num1, 1e-300) / fpr), 0.0)
        t1 = np.where((num1 > 0) & (fpr <= 0), np.inf, t1)
        num2 = 1.0 - delta - fpr
        den2 = 1.0 - tpr
        t2 = np.where((num2 > 0) & (den2 > 0), np.log(np.maximum(num2, 1e-300) / den2), 0.0)
        t2 = np.where((num2 > 0) & (den2 <= 0), np.inf, t2)
    return np.maximum(np.maximum(t1, t2), 0.0)


def _check_count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 0:
        raise PrivacyError(f"{name} must be an integer >= 0, got {value!r}.")
    return int(value)


def _check_delta_confidence(delta: float, confidence: float) -> tuple[float, float]:
    if isinstance(delta, bool) or not isinstance(delta, numbers.Real) or not (0.0 <= delta < 1.0):
        raise PrivacyError(
            f"delta must be in [0, 1), got {delta!r}: use the delta of the guarantee being audited."
        )
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, numbers.Real)
        or not (0.0 < confidence < 1.0)
    ):
        raise PrivacyError(f"confidence must be in (0, 1), got {confidence!r}; 0.95 is usual.")
    return float(delta), float(confidence)


def epsilon_lower_bound(
    true_positives: int,
    positives: int,
    false_positives: int,
    negatives: int,
    delta: float,
    confidence: float = 0.95,
) -> AuditBound:
    """Lower bound on epsilon from an attack's confusion counts.

    Args:
        true_positives: Members (canaries that were trained on) the attack flagged.
        positives: Number of members tested (>= 1).
        false_positives: Non-members the attack flagged.
        negatives: Number of non-members tested (>= 1).
        delta: The delta of the guarantee being audited.
        confidence: Joint confidence of the Clopper-Pearson bounds (default 0.95).

    Returns:
        An :class:`AuditBound` with ``threshold_selection = "given"``.

    Example:
        >>> epsilon_lower_bound(50, 100, 50, 100, delta=1e-5).epsilon_lower_bound
        0.0
    """
    tp = _check_count(true_positives, "true_positives")
    p = _check_count(positives, "positives")
    fp = _check_count(false_positives, "false_positives")
    n = _check_count(negatives, "negatives")
    if p < 1 or n < 1:
        raise PrivacyError(
            f"need at least one member and one non-member (positives={p}, negatives={n}): an audit "
            f"compares the two."
        )
    if tp > p or fp > n:
        raise PrivacyError(
            f"counts exceed their totals (true_positives={tp} of {p}, false_positives={fp} of {n})."
        )
    d, conf = _check_delta_confidence(delta, confidence)
    alpha = (1.0 - conf) / 2.0
    tpr_lo = float(_cp_lower(np.array(tp), np.array(p), alpha))
    fpr_hi = float(_cp_upper(np.array(fp), np.array(n), alpha))
    eps = float(_dp_bound(np.array(tpr_lo), np.array(fpr_hi), d))
    return AuditBound(eps, tpr_lo, fpr_hi, tp, p, fp, n, d, conf)


def _scan(
    members: np.ndarray, nonmembers: np.ndarray, delta: float, alpha: float
) -> tuple[float, float, int, int, float, float]:
    """Best threshold on these scores: (eps, threshold, tp, fp, tpr_lo, fpr_hi)."""
    m = np.sort(members)
    nm = np.sort(nonmembers)
    thresholds = np.unique(np.concatenate([m, nm]))
    tp = len(m) - np.searchsorted(m, thresholds, side="left")  # members with score >= t
    fp = len(nm) - np.searchsorted(nm, thresholds, side="left")
    tpr_lo = _cp_lower(tp, np.full_like(tp, len(m)), alpha)
    fpr_hi = _cp_upper(fp, np.full_like(fp, len(nm)), alpha)
    eps = _dp_bound(tpr_lo, fpr_hi, delta)
    i = int(np.argmax(eps))
    return float(eps[i]), float(thresholds[i]), int(tp[i]), int(fp[i]), float(tpr_lo[i]), float(fpr_hi[i])


def _as_scores(x: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float).ravel()
    if arr.size == 0:
        raise PrivacyError(f"{name} is empty: the audit needs scores for members and non-members.")
    if not np.all(np.isfinite(arr)):
        raise PrivacyError(f"{name} contains NaN or inf; attack scores must be finite numbers.")
    return arr


def epsilon_lower_bound_from_scores(
    member_scores: Sequence[float] | np.ndarray,
    nonmember_scores: Sequence[float] | np.ndarray,
    delta: float,
    confidence: float = 0.95,
    *,
    holdout_fraction: float | None = None,
    higher_is_member: bool = True,
    seed: int = 0,
) -> AuditBound:
    """Best epsilon lower bound over decision thresholds ``score >= t`` on attack scores.

    Every distinct score is tried as a threshold. With ``holdout_fraction=None`` the threshold is
    chosen on the same scores it is evaluated on: **optimistic** (biased upward; the result is
    flagged ``optimistic``). With ``holdout_fraction = f`` a random fraction ``f`` of the members and
    of the non-members (split with ``seed``) is held out; the threshold is chosen on the rest and the
    bound is computed on the held-out scores only, so the confidence statement holds.

    Args:
        member_scores: Attack scores of members (records/canaries that were trained on).
        nonmember_scores: Attack scores of non-members.
        delta: The delta of the guarantee being audited.
        confidence: Joint confidence of the Clopper-Pearson bounds (default 0.95).
        holdout_fraction: Fraction in (0, 1) held out for an honest bound, or ``None``.
        higher_is_member: Whether a higher score means "member" (else scores are negated).
        seed: Seed of the holdout split.

    Returns:
        An :class:`AuditBound` (``threshold`` in the original score units).

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> b = epsilon_lower_bound_from_scores(rng.normal(3, 1, 2000), rng.normal(0, 1, 2000),
        ...                                     delta=1e-5, holdout_fraction=0.5)
        >>> b.threshold_selection, b.epsilon_lower_bound > 1.0
        ('holdout', True)
    """
    mem = _as_scores(member_scores, "member_scores")
    non = _as_scores(nonmember_scores, "nonmember_scores")
    d, conf = _check_delta_confidence(delta, confidence)
    alpha = (1.0 - conf) / 2.0
    sign = 1.0 if higher_is_member else -1.0
    mem, non = sign * mem, sign * non

    if holdout_fraction is None:
        eps, thr, tp, fp, tpr_lo, fpr_hi = _scan(mem, non, d, alpha)
        return AuditBound(eps, tpr_lo, fpr_hi, tp, len(mem), fp, len(non), d, conf, sign * thr, "same_data")

    f = holdout_fraction
    if isinstance(f, bool) or not isinstance(f, numbers.Real) or not (0.0 < f < 1.0):
        raise PrivacyError(f"holdout_fraction must be in (0, 1) or None, got {f!r}; 0.5 is usual.")
    rng = np.random.default_rng(seed)
    mem = rng.permutation(mem)
    non = rng.permutation(non)
    k_mem = int(round(f * len(mem)))
    k_non = int(round(f * len(non)))
    if not (1 <= k_mem < len(mem)) or not (1 <= k_non < len(non)):
        raise PrivacyError(
            f"holdout_fraction={f} leaves an empty part ({len(mem)} members, {len(non)} non-members): "
            f"use more scores or a fraction nearer 0.5."
        )
    _, thr, _, _, _, _ = _scan(mem[k_mem:], non[k_non:], d, alpha)
    mem_h, non_h = mem[:k_mem], non[:k_non]
    tp = int(np.sum(mem_h >= thr))
    fp = int(np.sum(non_h >= thr))
    b = epsilon_lower_bound(tp, len(mem_h), fp, len(non_h), d, conf)
    return AuditBound(
        b.epsilon_lower_bound, b.tpr_lower, b.fpr_upper, tp, len(mem_h), fp, len(non_h), d, conf,
        sign * thr, "holdout",
    )


def gaussian_mechanism_epsilon(mu: float, delta: float) -> float:
    """Exact epsilon of a Gaussian mechanism with sensitivity/sigma ratio ``mu`` (mu-GDP) at ``delta``.

    Uses the tight curve of Balle & Wang (2018):
    ``delta(eps) = Phi(-eps/mu + mu/2) - exp(eps) * Phi(-eps/mu - mu/2)``. Useful to sanity-check
    an audit: member scores ~ N(mu, 1) vs non-member scores ~ N(0, 1) are the optimal attack on it.

    Example:
        >>> round(gaussian_mechanism_epsilon(1.0, 1e-5), 3)
        4.377
    """
    if not (isinstance(mu, numbers.Real) and mu > 0 and math.isfinite(mu)):
        raise PrivacyError(f"mu must be a finite number > 0, got {mu!r}.")
    if not (isinstance(delta, numbers.Real) and 0.0 < delta < 1.0):
        raise PrivacyError(f"delta must be in (0, 1), got {delta!r}.")
    norm = stats.norm

    def delta_of(eps: float) -> float:
        # exp(eps) * Phi(.) in log space: no overflow for large eps
        return float(norm.cdf(-eps / mu + mu / 2) - math.exp(eps + norm.logcdf(-eps / mu - mu / 2)))

    if delta_of(0.0) <= delta:
        return 0.0
    hi = 1.0
    while delta_of(hi) > delta:
        hi *= 2.0
    return float(optimize.brentq(lambda e: delta_of(e) - delta, 0.0, hi, xtol=1e-12, rtol=1e-12))


# ------------------------------------------------------------------------------------------------
# Gaussian-DP conversion (Nasr et al. 2023) and the one-run analysis (Steinke et al. 2023)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GaussianAuditBound:
    """An epsilon lower bound read through Gaussian DP: the attack's (FPR, TPR) bounds give
    ``mu >= Phi^-1(TPR_lower) - Phi^-1(FPR_upper)``, and ``epsilon`` is that of ``mu``-GDP at delta.

    It holds (with ``confidence``) for a mechanism whose trade-off curve is Gaussian: exactly for
    the Gaussian mechanism and full-batch DP-SGD, by the central limit theorem for many subsampled
    steps (Dong, Roth & Su 2022). It is the conversion of Nasr et al. (2023), which needs far fewer
    trials than the (epsilon, delta) bound for the same epsilon; :attr:`epsilon_delta` is that
    assumption-free bound on the same counts (with the counts and the threshold).
    """

    epsilon_lower_bound: float
    mu_lower: float
    epsilon_delta: AuditBound


def _gdp_mu(tpr_lo: np.ndarray, fpr_hi: np.ndarray) -> np.ndarray:
    """Largest mu the bounds prove: Phi^-1(TPR) - Phi^-1(FPR), and the same for the reverse test."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = stats.norm.ppf(tpr_lo) - stats.norm.ppf(fpr_hi)
    return np.nan_to_num(np.maximum(mu, 0.0), nan=0.0, posinf=0.0)


def _gdp_scan(mem: np.ndarray, non: np.ndarray, alpha: float) -> float:
    """The threshold whose Clopper-Pearson bounds prove the largest mu on these scores."""
    m, nm = np.sort(mem), np.sort(non)
    thresholds = np.unique(np.concatenate([m, nm]))
    tp = len(m) - np.searchsorted(m, thresholds, side="left")
    fp = len(nm) - np.searchsorted(nm, thresholds, side="left")
    mu = _gdp_mu(_cp_lower(tp, np.full_like(tp, len(m)), alpha), _cp_upper(fp, np.full_like(fp, len(nm)), alpha))
    return float(thresholds[int(np.argmax(mu))])


def gdp_epsilon_lower_bound_from_scores(
    member_scores: Sequence[float] | np.ndarray,
    nonmember_scores: Sequence[float] | np.ndarray,
    delta: float,
    confidence: float = 0.95,
    *,
    holdout_fraction: float = 0.5,
    seed: int = 0,
) -> GaussianAuditBound:
    """Epsilon lower bound through Gaussian DP, from independent trials' attack scores.

    The threshold is chosen on a random ``1 - holdout_fraction`` of the scores (``seed``) and the
    counts are taken on the rest, so choosing it does not bias the bound. Members must score
    higher. See :class:`GaussianAuditBound` for the assumption.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)                 # the Gaussian mechanism at mu = 1
        >>> b = gdp_epsilon_lower_bound_from_scores(rng.normal(1, 1, 50_000), rng.normal(0, 1, 50_000), 1e-5)
        >>> 0.8 < b.mu_lower < 1.0, b.epsilon_lower_bound < gaussian_mechanism_epsilon(1.0, 1e-5)
        (True, True)
    """
    mem = _as_scores(member_scores, "member_scores")
    non = _as_scores(nonmember_scores, "nonmember_scores")
    d, conf = _check_delta_confidence(delta, confidence)
    f = holdout_fraction
    if isinstance(f, bool) or not isinstance(f, numbers.Real) or not (0.0 < f < 1.0):
        raise PrivacyError(f"holdout_fraction must be in (0, 1), got {f!r}; 0.5 is usual.")
    alpha = (1.0 - conf) / 2.0
    rng = np.random.default_rng(seed)
    mem, non = rng.permutation(mem), rng.permutation(non)
    k_mem, k_non = int(round(f * len(mem))), int(round(f * len(non)))
    if not (1 <= k_mem < len(mem)) or not (1 <= k_non < len(non)):
        raise PrivacyError(f"holdout_fraction={f} leaves an empty part ({len(mem)} members, "
                           f"{len(non)} non-members): use more trials.")
    thr = _gdp_scan(mem[k_mem:], non[k_non:], alpha)
    tp, fp = int(np.sum(mem[:k_mem] >= thr)), int(np.sum(non[:k_non] >= thr))
    counts = dataclasses.replace(epsilon_lower_bound(tp, k_mem, fp, k_non, d, conf), threshold=thr,
                                 threshold_selection="holdout")
    mu = float(_gdp_mu(np.array(counts.tpr_lower), np.array(counts.fpr_upper)))
    eps = gaussian_mechanism_epsilon(mu, d) if mu > 0 and d > 0 else (math.inf if mu > 0 else 0.0)
    return GaussianAuditBound(eps, mu, counts)


@dataclass(frozen=True)
class OneRunBound:
    """Outcome of :func:`one_run_epsilon_lower_bound` (Steinke, Nasr & Jagielski 2023)."""

    epsilon_lower_bound: float
    canaries: int
    guesses: int
    correct: int
    delta: float
    confidence: float


def one_run_p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """P[at least ``v`` of ``r`` guesses right] under an (epsilon, delta)-DP mechanism, for ``m``
    canaries each included by an independent fair coin (Steinke, Nasr & Jagielski 2023, Thm 3.3
    for delta = 0 and its delta > 0 extension: ``beta + 2 m delta alpha``)."""
    p = 1.0 / (1.0 + math.exp(-epsilon))
    beta = float(stats.binom.sf(v - 1, r, p))
    if delta == 0 or v == 0:
        return beta
    i = np.arange(1, v + 1)
    alpha = float(np.max((stats.binom.sf(v - i - 1, r, p) - beta) / i))
    return min(1.0, beta + 2.0 * m * delta * alpha)


def one_run_epsilon_lower_bound(
    scores: Sequence[float] | np.ndarray,
    included: Sequence[bool] | np.ndarray,
    delta: float,
    confidence: float = 0.95,
    guesses: Sequence[int] | None = None,
) -> OneRunBound:
    """Epsilon lower bound from ONE training run with ``m`` canaries, each included by a fair coin.

    The auditor guesses "included" for the ``k`` highest-scoring canaries and "excluded" for the
    ``k`` lowest; the bound is the largest epsilon whose p-value for that many correct guesses is
    below ``1 - confidence``. Unlike counting canaries as independent trials, this holds although
    the canaries share one run (the coins are independent, the scores need not be). Several
    guess counts are tried; the p-value is Bonferroni-corrected for them, so the confidence holds.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> inc = rng.random(2000) < 0.5
        >>> b = one_run_epsilon_lower_bound(rng.normal(3.0 * inc, 1.0), inc, delta=1e-5)
        >>> 1.0 < b.epsilon_lower_bound < 6.0
        True
    """
    s = _as_scores(scores, "scores")
    inc = np.asarray(included, dtype=bool).ravel()
    if inc.shape != s.shape:
        raise PrivacyError(f"scores ({s.size}) and included ({inc.size}) must have one entry per canary.")
    d, conf = _check_delta_confidence(delta, confidence)
    m = s.size
    ks = sorted({int(k) for k in (guesses or [max(1, int(m * f)) for f in (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)])
                 if 1 <= 2 * int(k) <= m})
    if not ks:
        raise PrivacyError(f"no valid guess count for {m} canaries: need at least 2 canaries.")
    sig = (1.0 - conf) / len(ks)
    order = np.argsort(s, kind="stable")
    best = OneRunBound(0.0, m, 0, 0, d, conf)
    for k in ks:
        v = int(inc[order[-k:]].sum() + (~inc[order[:k]]).sum())
        r = 2 * k
        if one_run_p_value(m, r, v, 0.0, d) > sig:
            continue
        lo, hi = 0.0, 1.0
        while one_run_p_value(m, r, v, hi, d) <= sig and hi < 100:
            lo, hi = hi, 2 * hi
        eps = float(optimize.brentq(lambda e: one_run_p_value(m, r, v, e, d) - sig, lo, hi, xtol=1e-6)) \
            if hi < 100 else math.inf
        if eps > best.epsilon_lower_bound:
            best = OneRunBound(eps, m, r, v, d, conf)
    return best


__all__ = [
    "AuditBound",
    "GaussianAuditBound",
    "OneRunBound",
    "gdp_epsilon_lower_bound_from_scores",
    "one_run_epsilon_lower_bound",
    "one_run_p_value",
    "ThresholdSelection",
    "epsilon_lower_bound",
    "epsilon_lower_bound_from_scores",
    "gaussian_mechanism_epsilon",
]
