"""Bayesian layers: mean-field Gaussian weights that can be trained by DP-SGD.

:class:`MeanFieldLinear` holds a variational posterior ``q(w) = N(mu, softplus(rho)^2)`` per
weight and bias, and a prior ``N(0, prior_sigma^2)``. A forward pass uses one weight sample
``w = mu + softplus(rho) * eps`` for the whole batch, with ``eps`` drawn by :meth:`resample`
from an explicit generator (the house rule) and kept on the layer as a plain attribute.

Why not Pyro's autoguides here: their parameters are not used inside a module call, so Opacus
computes no per-example gradient for them (STACK-NOTES, "Pyro and DP"); and ``eps`` as a
buffer is refused by Opacus, while in its functorch mode a plain attribute is frozen at the
copy ``make_private`` makes. The layer's own grad sampler
(:mod:`trustgen.privacy.bayes_grad_sampler`) gives the exact per-example gradients of
``mu`` and ``rho`` in hooks mode: ``d loss / d mu = g`` and
``d loss / d rho = g * eps * sigmoid(rho)``, with ``g`` the per-example gradient of the
sampled weight (the ``nn.Linear`` one).

The KL term to the prior depends on no record: under DP its gradient is added after the noise
(post-processing), never clipped with the data's.

Whole modules: :func:`bayesian_layers` finds the layers, :func:`resample_weights` draws one
posterior sample for all of them, :func:`use_posterior_mean` removes the noise, and
:func:`weight_kl` sums their KL terms. Models train on a fresh draw at every step and
generate with the posterior mean when in ``eval()`` mode; posterior spread is asked for
explicitly (:mod:`trustgen.uncertainty`).

Example:
    >>> layer = MeanFieldLinear(3, 2)
    >>> layer.resample(torch.Generator().manual_seed(0))
    >>> layer(torch.zeros(4, 3)).shape, bool(layer.kl() > 0)
    (torch.Size([4, 2]), True)
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from trustgen.errors import ConfigError

RHO_INIT = -5.0  # softplus(-5) ~ 0.0067: start close to the point estimate, as mean-field VI usually does


class MeanFieldLinear(nn.Module):
    """A linear layer with a mean-field Gaussian posterior over its weights and bias.

    Args:
        in_features, out_features: as for ``nn.Linear``.
        prior_sigma: standard deviation of the zero-mean Gaussian prior on every weight.
    """

    def __init__(self, in_features: int, out_features: int, prior_sigma: float = 1.0) -> None:
        super().__init__()
        if not (isinstance(prior_sigma, (int, float)) and math.isfinite(prior_sigma) and prior_sigma > 0):
            raise ConfigError(f"prior_sigma must be a positive number, got {prior_sigma!r}")
        self.in_features, self.out_features, self.prior_sigma = in_features, out_features, float(prior_sigma)
        bound = 1.0 / math.sqrt(in_features)
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        self.weight_rho = nn.Parameter(torch.full((out_features, in_features), RHO_INIT))
        self.bias_mu = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        self.bias_rho = nn.Parameter(torch.full((out_features,), RHO_INIT))
        # The weight noise of the current draw: plain attributes, not buffers (see the module docstring);
        # zeros until the first resample(), so the layer starts as its posterior mean.
        self.eps_weight = torch.zeros(out_features, in_features)
        self.eps_bias = torch.zeros(out_features)

    def resample(self, generator: torch.Generator | None = None) -> None:
        """Draw the weight noise for the next forward passes (one draw for the whole batch)."""
        dev = self.weight_mu.device
        gdev = generator.device if generator is not None else dev
        self.eps_weight = torch.randn(self.weight_mu.shape, generator=generator, device=gdev).to(dev)
        self.eps_bias = torch.randn(self.bias_mu.shape, generator=generator, device=gdev).to(dev)

    def use_mean(self) -> None:
        """Forward with the posterior mean (no weight noise)."""
        self.eps_weight = torch.zeros_like(self.weight_mu)
        self.eps_bias = torch.zeros_like(self.bias_mu)

    def sampled(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The weight and bias of the current draw."""
        w = self.weight_mu + F.softplus(self.weight_rho) * self.eps_weight.to(self.weight_mu)
        b = self.bias_mu + F.softplus(self.bias_rho) * self.eps_bias.to(self.bias_mu)
        return w, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.sampled()
        return F.linear(x, w, b)

    def kl(self) -> torch.Tensor:
        """KL(q || prior), summed over every weight and bias (closed form for Gaussians)."""
        total = self.weight_mu.new_zeros(())
        s2 = self.prior_sigma ** 2
        for mu, rho in ((self.weight_mu, self.weight_rho), (self.bias_mu, self.bias_rho)):
            sigma = F.softplus(rho)
            total = total + (torch.log(self.prior_sigma / sigma) + (sigma.pow(2) + mu.pow(2)) / (2 * s2) - 0.5).sum()
        return total

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, prior_sigma={self.prior_sigma}"


def bayesian_layers(module: nn.Module) -> list[MeanFieldLinear]:
    """The mean-field layers inside ``module`` (empty for a deterministic network)."""
    return [m for m in module.modules() if isinstance(m, MeanFieldLinear)]


def resample_weights(module: nn.Module, generator: torch.Generator | None) -> None:
    """One posterior draw for every mean-field layer of ``module``, in module order."""
    for layer in bayesian_layers(module):
        layer.resample(generator)


def use_posterior_mean(module: nn.Module) -> None:
    """Every mean-field layer of ``module`` forwards with its posterior mean."""
    for layer in bayesian_layers(module):
        layer.use_mean()


def weight_kl(module: nn.Module) -> torch.Tensor:
    """KL(q || prior) of every mean-field layer of ``module``, summed (0 when it has none).

    It depends on no record: the trainer adds its gradient, scaled by ``1 / n``, beside the
    per-example losses (after the noise under DP)."""
    layers = bayesian_layers(module)
    if not layers:
        return next(module.parameters()).new_zeros(())
    return torch.stack([layer.kl() for layer in layers]).sum()


def bayes_mlp(sizes: list[int], act=nn.SiLU, *, prior_sigma: float = 1.0, bayesian: str = "last") -> nn.Sequential:
    """An MLP whose output layer (``bayesian="last"``) or every layer (``"all"``) is mean-field.

    Deterministic hidden layers keep the KL term small enough for the data to dominate it
    (a mean-field posterior on every weight of a wide net is pulled to its prior, and the net
    underfits); the output layer's posterior is where the spread of the outputs comes from.
    """
    if bayesian not in ("last", "all"):
        raise ConfigError(f"bayesian must be 'last' or 'all', got {bayesian!r}")
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        last = i == len(sizes) - 2
        if last or bayesian == "all":
            layers.append(MeanFieldLinear(sizes[i], sizes[i + 1], prior_sigma))
        else:
            layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if not last:
            layers.append(act())
    return nn.Sequential(*layers)
