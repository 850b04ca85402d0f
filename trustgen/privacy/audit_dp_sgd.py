"""White-box audit of the DP-SGD mechanism itself, with gradient canaries (Nasr et al. 2023).

The adversary is the one DP-SGD's accounting assumes: it chooses the canary's gradient and sees
every noised update. The audit runs trustgen's own mechanism (:class:`PrivateGradients`:
Opacus clipping, the secure noise; :func:`poisson_batch`: the secret sampling) at the noise
multiplier the accountant calibrates for the claimed epsilon, and tries to tell, canary by canary,
whether it was in the data:

* The private module is ``Linear(D, 1)`` and canary ``i``'s input is ``canary_norm * C * e_i``,
  so its per-example gradient is a Dirac on coordinate ``i``, clipped to norm ``C``. Canaries that
  are "out" are simply not in the data set: their coordinate receives noise only.
* Coordinates do not interact: clipping is per example, noise is independent per coordinate and
  Poisson sampling independent per example. So one run with ``D`` canaries gives ``D`` independent
  trials of the same hypothesis test, and ``runs`` runs pool ``runs * D`` of them.
* At step ``t`` the adversary reads ``x_t = update_i * expected_batch_size / C``, distributed as
  ``N(0, sigma^2)`` without the canary and as ``(1 - q) N(0, sigma^2) + q N(1, sigma^2)`` with it,
  and scores the canary by the log-likelihood ratio summed over steps (the optimal test, computed
  with the *claimed* ``q`` and ``sigma``).

Three bounds come out, all lower bounds on the epsilon of what ran:

* ``gdp``: the trials' (FPR, TPR) read through Gaussian DP (:func:`gdp_epsilon_lower_bound_from_scores`;
  threshold chosen on half the trials, counted on the other half). Tight: at the claimed epsilon it
  lands near the claim (benchmarks/dp_audit.py). It assumes the mechanism's trade-off curve is
  Gaussian, which holds exactly at ``q = 1`` and approximately for many subsampled steps.
* ``epsilon_delta``: the same counts through the assumption-free (epsilon, delta) bound (looser).
* ``one_run``: the first run alone, analysed as Steinke, Nasr & Jagielski (2023) do (one training
  run, canaries included by fair coins): valid without any independence assumption, and loose.

A bound above the claim means the mechanism, its accounting or its sampling is broken
(``tests/privacy/test_audit_dp_sgd.py`` breaks each on purpose and checks that it is caught). A
bound below the claim proves nothing beyond what was tested: this audits the DP-SGD step and its
accounting, not the rest of a pipeline (for that, the black-box audit in
:mod:`trustgen.privacy.audit`).

Example:
    >>> r = audit_dp_sgd(1.0, sample_rate=0.5, steps=5, canaries=400, runs=1, seed=0)
    >>> r.caught, r.gdp_epsilon_lower_bound < 1.0
    (False, True)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from trustgen.errors import PrivacyError
from trustgen.limits import MAX_AUDIT_STEP_BYTES
from trustgen.privacy.accounting import calibrate_noise, check_accountant, check_delta_range, \
    check_noise_multiplier, check_sample_rate, check_steps, check_target_epsilon, epsilon_for
from trustgen.privacy.audit_bounds import gdp_epsilon_lower_bound_from_scores, one_run_epsilon_lower_bound
from trustgen.privacy.dp_sgd import PrivateGradients, poisson_batch
from trustgen.privacy.secure_random import SecureRandom, key_from_seed, new_key

#: Builds the mechanism under audit; called like :class:`PrivateGradients` (tests pass broken ones).
MechanismFactory = Callable[..., PrivateGradients]
#: Draws a Poisson batch; called like :func:`poisson_batch`.
BatchSampler = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class MechanismAuditResult:
    """What :func:`audit_dp_sgd` measured (plain types: ``to_dict`` is JSON-ready).

    ``caught`` is True when the tight (Gaussian-DP) bound exceeds the claimed epsilon.
    """

    claimed_epsilon: float
    delta: float
    noise_multiplier: float
    sample_rate: float
    steps: int
    accountant: str
    clipping: str
    canaries_per_run: int
    runs: int
    members: int
    non_members: int
    gdp_epsilon_lower_bound: float
    mu_lower: float
    epsilon_delta_lower_bound: float
    one_run_epsilon_lower_bound: float
    confidence: float

    @property
    def caught(self) -> bool:
        return self.gdp_epsilon_lower_bound > self.claimed_epsilon

    def to_dict(self) -> dict:
        return {**asdict(self), "caught": self.caught}


def _log_likelihood_ratio(x: torch.Tensor, q: float, sigma: float) -> torch.Tensor:
    """log p(x | canary in) / p(x | canary out) for one step's normalised update ``x``."""
    shifted = (x - 0.5) / sigma**2  # log N(x; 1, s^2) - log N(x; 0, s^2)
    if q >= 1.0:
        return shifted
    return torch.logaddexp(torch.full_like(x, math.log1p(-q)), math.log(q) + shifted)


def _one_run(included: np.ndarray, *, sigma: float, q: float, steps: int, C: float, canary_norm: float,
             clipping: str, noise: SecureRandom, mechanism: MechanismFactory, batch_sampler: BatchSampler,
             bar) -> np.ndarray:
    """Train on the included canaries for ``steps`` steps; return every canary's score."""
    d = included.size
    present = torch.as_tensor(np.flatnonzero(included))
    module = torch.nn.Linear(d, 1, bias=False)
    torch.nn.init.zeros_(module.weight)  # the gradient of w . x is x: the weights never matter
    optimizer = torch.optim.SGD(module.parameters(), lr=0.0)
    expected = q * len(present)
    dp = mechanism(module, max_grad_norm=C, noise_multiplier=sigma, expected_batch_size=expected,
                   mode=clipping, noise=noise)
    scores = torch.zeros(d, dtype=torch.float64)
    try:
        for t in range(steps):
            batch = present[batch_sampler(len(present), q, noise, t)]
            x = torch.zeros(len(batch), d)
            x[torch.arange(len(batch)), batch] = canary_norm * C
            optimizer.zero_grad(set_to_none=True)
            dp.backward(module(x).squeeze(1), optimizer)
            update = module.weight.grad[0].double() * expected / C
            scores += _log_likelihood_ratio(update, q, sigma)
            bar.update(1)
    finally:
        dp.close()
    return scores.numpy()


def audit_dp_sgd(epsilon: float | None = None, *, noise_multiplier: float | None = None, delta: float = 1e-5, sample_rate: float = 0.1, steps: int = 100,
                 canaries: int = 10_000, runs: int = 2, accountant: str = "prv",
                 clipping: Literal["bookkeeping", "ghost", "hooks"] = "bookkeeping", max_grad_norm: float = 1.0,
                 canary_norm: float = 4.0, confidence: float = 0.95, seed: int | None = None,
                 mechanism: MechanismFactory = PrivateGradients, batch_sampler: BatchSampler = poisson_batch,
                 progress: bool = False) -> MechanismAuditResult:
    """Audit DP-SGD at (``epsilon``, ``delta``) with gradient canaries; see the module docstring.

    Args:
        epsilon, delta, accountant: the claim; the noise multiplier is calibrated for it exactly as
            training calibrates it (:func:`calibrate_noise`).
        noise_multiplier: instead of ``epsilon``: audit this sigma (a trained run's plan); the
            claim is then its epsilon under ``accountant`` (:func:`epsilon_for`).
        sample_rate, steps: the Poisson rate and number of steps the claim accounts for.
        canaries: canaries per run, each included by a fair coin (trials per run).
        runs: independent runs pooled for the tight bound (the one-run bound uses the first).
        clipping: the clipping mode under audit (``"bookkeeping"``: trustgen's choice for its
            models, ``"ghost"``, ``"hooks"``).
        canary_norm: the canary gradient's norm before clipping, in units of ``max_grad_norm``
            (above 1, so that clipping has work to do).
        seed: seeds the coins and the noise key, for a reproducible audit; None draws a fresh key.
        mechanism, batch_sampler: the mechanism under audit (default: trustgen's own).
    """
    d = check_delta_range(delta)
    q = check_sample_rate(sample_rate)
    steps = check_steps(steps)
    kind = check_accountant(accountant)
    if (epsilon is None) == (noise_multiplier is None):
        raise PrivacyError("give the claim as epsilon or as noise_multiplier, exactly one of them")
    if epsilon is None:
        sigma = check_noise_multiplier(noise_multiplier)
        eps = epsilon_for(sigma, q, steps, d, accountant=kind)
    else:
        eps = check_target_epsilon(epsilon)
        sigma = calibrate_noise(eps, d, q, steps, accountant=kind)
    if clipping not in ("bookkeeping", "ghost", "hooks"):
        raise PrivacyError(f"clipping must be 'bookkeeping', 'ghost' or 'hooks', got {clipping!r}")
    if not (isinstance(canaries, int) and canaries >= 100) or not (isinstance(runs, int) and runs >= 1):
        raise PrivacyError(f"need canaries >= 100 and runs >= 1, got canaries={canaries!r}, runs={runs!r}")
    step_bytes = 12 * sample_rate * canaries ** 2 / 2  # the batch, its per-example gradients and their sum
    if step_bytes > MAX_AUDIT_STEP_BYTES:
        raise PrivacyError(f"{canaries:,} canaries at sample rate {sample_rate:.3g} need about "
                           f"{step_bytes / 1e9:.0f} GB per step (a canary is one coordinate of the gradient): use at "
                           f"most {int((2 * MAX_AUDIT_STEP_BYTES / (12 * sample_rate)) ** 0.5):,} canaries per run, "
                           "and more --runs")
    if not canary_norm > 1.0:
        raise PrivacyError(f"canary_norm must exceed 1 (a canary clipping does not touch tests nothing), got {canary_norm!r}")
    coins = np.random.default_rng(seed)
    scores, inclusion = [], []
    with tqdm(total=runs * steps, desc="white-box audit", disable=not progress) as bar:
        for r in range(runs):
            included = coins.random(canaries) < 0.5
            key = new_key() if seed is None else key_from_seed(seed * 1_000 + r)
            scores.append(_one_run(included, sigma=sigma, q=q, steps=steps, C=float(max_grad_norm),
                                   canary_norm=float(canary_norm), clipping=clipping, noise=SecureRandom(key),
                                   mechanism=mechanism, batch_sampler=batch_sampler, bar=bar))
            inclusion.append(included)
    s, inc = np.concatenate(scores), np.concatenate(inclusion)
    tight = gdp_epsilon_lower_bound_from_scores(s[inc], s[~inc], d, confidence, seed=0 if seed is None else seed)
    one = one_run_epsilon_lower_bound(scores[0], inclusion[0], d, confidence)
    return MechanismAuditResult(
        claimed_epsilon=eps, delta=d, noise_multiplier=float(sigma), sample_rate=q, steps=steps, accountant=kind,
        clipping=clipping, canaries_per_run=canaries, runs=runs, members=int(inc.sum()),
        non_members=int((~inc).sum()), gdp_epsilon_lower_bound=float(tight.epsilon_lower_bound),
        mu_lower=float(tight.mu_lower), epsilon_delta_lower_bound=float(tight.epsilon_delta.epsilon_lower_bound),
        one_run_epsilon_lower_bound=float(one.epsilon_lower_bound), confidence=float(confidence))


__all__ = ["MechanismAuditResult", "audit_dp_sgd"]
