"""Opacus's per-example gradients for :class:`~trustgen.models.bayes.MeanFieldLinear`.

With ``w = mu + softplus(rho) * eps`` (one ``eps`` per batch), the per-example gradient of the
sampled weight is the ``nn.Linear`` one, ``g_i = backprop_i^T activation_i``; the chain rule
gives ``d/d mu = g_i`` and ``d/d rho = g_i * eps * sigmoid(rho)`` (``softplus' = sigmoid``).
Registering it makes hooks-mode clipping see every variational parameter
(tests/privacy/test_bayes_dp.py checks it against a slow per-example loop). Importing this
module registers it.
"""

from __future__ import annotations

import torch
from opacus.grad_sample import register_grad_sampler

from trustgen.models.bayes import MeanFieldLinear


@register_grad_sampler(MeanFieldLinear)
def mean_field_linear_grad_sample(layer: MeanFieldLinear, activations: list, backprops: torch.Tensor) -> dict:
    a = activations[0].to(backprops.dtype)
    g_w = torch.einsum("n...i,n...j->nij", backprops, a)
    g_b = torch.einsum("n...k->nk", backprops)
    out = {}
    for mu, rho, eps, g in ((layer.weight_mu, layer.weight_rho, layer.eps_weight, g_w),
                            (layer.bias_mu, layer.bias_rho, layer.eps_bias, g_b)):
        if mu.requires_grad:
            out[mu] = g
        if rho.requires_grad:
            out[rho] = g * (eps.to(g) * torch.sigmoid(rho.detach()).to(g))[None]
    return out
