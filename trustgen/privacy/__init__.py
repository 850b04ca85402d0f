"""Differential privacy for trustgen: accounting, reports and audit bounds.

Submodules:

* :mod:`trustgen.privacy.accounting`: the pure maths: epsilon for DP-SGD (Opacus PRV / RDP), fast
  noise calibration, the delta policy.
* :mod:`trustgen.privacy.accountant`: the resumable :class:`~trustgen.privacy.accountant.Accountant`
  (the history of one run, saved in checkpoints).
* :mod:`trustgen.privacy.config`: :class:`~trustgen.privacy.config.PrivacyConfig`, what a user asks
  of DP training.
* :mod:`trustgen.privacy.plan`: :func:`~trustgen.privacy.plan.plan_privacy`, the one builder of a
  frozen :class:`~trustgen.privacy.plan.PrivacyPlan` (sample rate, delta, noise, steps, mode).
* :mod:`trustgen.privacy.dp_sgd`: per-example clipping over Opacus, noise, Poisson sampling.
* :mod:`trustgen.privacy.label_histogram`: the DP label frequencies (a Gaussian histogram of the
  class counts) used as the sampling prior.
* :mod:`trustgen.privacy.engine`: :func:`~trustgen.privacy.engine.make_private`, DP-SGD for a
  user's own module, optimiser and training loop.
* :mod:`trustgen.privacy.report`: :class:`~trustgen.privacy.report.PrivacyReport`, the JSON report
  shipped with each model.
* :mod:`trustgen.privacy.audit_bounds`: empirical lower bounds on epsilon from attacks
  ((epsilon, delta) and Gaussian-DP conversions, the one-run analysis).
* :mod:`trustgen.privacy.audit`: the black-box canary audit of a whole training pipeline.
* :mod:`trustgen.privacy.audit_dp_sgd`: the white-box gradient-canary audit of the DP-SGD step;
  :mod:`trustgen.privacy.audit_faults`: broken mechanisms it must catch.
* :mod:`trustgen.privacy.dp_domains`: :func:`~trustgen.privacy.dp_domains.infer_dp_schema`, a
  table's schema estimated with pure epsilon-DP (``trustgen schema infer --epsilon``).

Names are imported lazily (accounting imports Opacus, hence torch, on first use), so
``import trustgen.privacy`` stays cheap.

Example:
    >>> from trustgen.privacy import epsilon_for
    >>> round(epsilon_for(1.0, 0.01, 10_000, 1e-5, accountant="rdp"), 3)
    6.713
"""

from __future__ import annotations

from trustgen.lazy import lazy_exports

_EXPORTS = {
    "Accountant": "accountant",
    "calibrate_noise": "accounting",
    "check_delta": "accounting",
    "default_delta": "accounting",
    "epsilon_for": "accounting",
    "epsilon_of_history": "accounting",
    "PrivacyConfig": "config",
    "PrivacyPlan": "plan",
    "plan_privacy": "plan",
    "PrivateGradients": "dp_sgd",
    "private_label_prior": "label_histogram",
    "make_private": "engine",
    "PrivateTraining": "engine",
    "PrivacyReport": "report",
    "AuditBound": "audit_bounds",
    "epsilon_lower_bound": "audit_bounds",
    "epsilon_lower_bound_from_scores": "audit_bounds",
    "gaussian_mechanism_epsilon": "audit_bounds",
    "gdp_epsilon_lower_bound_from_scores": "audit_bounds",
    "one_run_epsilon_lower_bound": "audit_bounds",
    "infer_dp_schema": "dp_domains",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, globals(), _EXPORTS)
