"""Deliberately broken DP-SGD mechanisms: what an audit must catch (fault injection).

Each fault is a drop-in for one argument of :func:`trustgen.privacy.audit_dp_sgd.audit_dp_sgd`
(``mechanism`` builds a :class:`PrivateGradients`, ``batch_sampler`` draws a Poisson batch) that
breaks one thing the accountant relies on while the claim stays the same. They are used by the
mutation tests (``tests/privacy/test_audit_dp_sgd.py``) and ``benchmarks/dp_audit.py``; never
train with them.

Example:
    >>> sorted(FAULTS)
    ['half sigma', 'no clipping', 'no noise', 'twice the sample rate']
"""

from __future__ import annotations

import math

import torch

from trustgen.privacy.dp_sgd import PrivateGradients, poisson_batch


def no_clipping(module, **kw) -> PrivateGradients:
    """Per-example gradients summed unclipped (the noise is still scaled to the clipping norm)."""
    dp = PrivateGradients(module, **kw)
    if kw["mode"] == "ghost":
        dp.gsm.max_grad_norm = math.inf  # Opacus's clipping factor becomes min(1, inf / norm) = 1
    else:
        dp.clip_coefficients = lambda norms: torch.ones_like(norms)
    return dp


def no_noise(module, **kw) -> PrivateGradients:
    """The clipped sum is released without noise."""
    dp = PrivateGradients(module, **kw)
    dp.noise_of_step = lambda step: [torch.zeros_like(p) for p in dp.params]
    return dp


def half_sigma(module, **kw) -> PrivateGradients:
    """Half the noise multiplier the accountant was told."""
    return PrivateGradients(module, **{**kw, "noise_multiplier": kw["noise_multiplier"] / 2})


def twice_the_sample_rate(n, q, rng, step, part=0) -> torch.Tensor:
    """Batches drawn at twice the sample rate the accountant was told."""
    return poisson_batch(n, min(1.0, 2 * q), rng, step, part)


#: name -> keyword arguments of ``audit_dp_sgd`` that inject the fault.
FAULTS: dict[str, dict] = {
    "no clipping": {"mechanism": no_clipping},
    "no noise": {"mechanism": no_noise},
    "half sigma": {"mechanism": half_sigma},
    "twice the sample rate": {"batch_sampler": twice_the_sample_rate},
}

__all__ = ["FAULTS", "half_sigma", "no_clipping", "no_noise", "twice_the_sample_rate"]
