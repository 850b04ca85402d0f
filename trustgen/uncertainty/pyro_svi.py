"""The Bayesian label head as a Pyro model and guide: Pyro's ELBO, and SVI fitting with it.

:func:`head_model_and_guide` writes a label head built of
:class:`~trustgen.models.bayes.MeanFieldLinear` layers (``label_head=bayes-mlp``) as a Pyro
program: every mean-field weight and bias is a ``pyro.sample`` site with the layer's Gaussian
prior, and the guide samples the same sites from ``N(mu, softplus(rho))`` using the layer's own
parameters. Both are ``PyroModule`` objects with ``module_local_params``: the variational
parameters stay the layer's, in its ``state_dict`` (so a run directory saves and reloads them
exactly), and nothing goes through Pyro's global parameter store, so two fits in one process
cannot overwrite each other.

Two uses:

* an oracle: Pyro's ``TraceMeanField_ELBO`` (analytic KL) of the head, divided by ``n``, is the
  objective trustgen's trainer minimises (``mean cross-entropy + KL / n``) for the same weight
  draw (tests/uncertainty/test_pyro_svi.py);
* :func:`fit_label_head`: (re)fit the head of a trained run by SVI on labelled rows, outside
  DP-SGD. That reads the rows without any privacy mechanism: for non-private runs, or on
  public data only. Opacus cannot train through Pyro's ELBO (STACK-NOTES, "Pyro and DP"): DP
  runs train the head inside DP-SGD with the layer's own grad sampler instead.

Example:
    >>> fit_label_head(run.model, x, y, steps=500)  # doctest: +SKIP
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from trustgen.errors import ConfigError
from trustgen.models.bayes import MeanFieldLinear, bayesian_layers


def _check_head(model) -> nn.Sequential:
    head = getattr(model, "label_head", None)
    if not isinstance(head, nn.Sequential) or not bayesian_layers(head):
        raise ConfigError("this run has no Bayesian label head: train it with --option label_head=bayes-mlp")
    return head


def _forward(head: nn.Sequential, x: torch.Tensor, weights: dict[str, torch.Tensor]) -> torch.Tensor:
    """The head's logits with the mean-field layers' weights taken from ``weights``."""
    h = x.flatten(1)
    for i, layer in enumerate(head):
        if isinstance(layer, MeanFieldLinear):
            h = F.linear(h, weights[f"head.{i}.weight"], weights[f"head.{i}.bias"])
        else:
            h = layer(h)
    return h


def head_model_and_guide(head: nn.Sequential, n: int):
    """``(model, guide)`` PyroModules of the head for a data set of ``n`` rows; both are called
    as ``(x, y)`` with a batch (the likelihood is scaled by ``n / len(x)``, as SVI on
    mini-batches does)."""
    import pyro
    import pyro.distributions as dist
    from pyro.nn import PyroModule

    pyro.settings.set(module_local_params=True)
    sites = [(i, layer) for i, layer in enumerate(head) if isinstance(layer, MeanFieldLinear)]

    class Model(PyroModule):
        def __init__(self):
            super().__init__()
            self.head = head

        def forward(self, x, y):
            w = {}
            for i, layer in sites:
                for part, mu in (("weight", layer.weight_mu), ("bias", layer.bias_mu)):
                    prior = dist.Normal(torch.zeros_like(mu), layer.prior_sigma).to_event(mu.dim())
                    w[f"head.{i}.{part}"] = pyro.sample(f"head.{i}.{part}", prior)
            logits = _forward(self.head, x, w)
            with pyro.plate("rows", n, subsample_size=len(x)):
                pyro.sample("y", dist.Categorical(logits=logits), obs=y)

    class Guide(PyroModule):
        def __init__(self):
            super().__init__()
            self.head = head

        def forward(self, x, y):
            for i, layer in sites:
                for part, mu, rho in (("weight", layer.weight_mu, layer.weight_rho),
                                      ("bias", layer.bias_mu, layer.bias_rho)):
                    pyro.sample(f"head.{i}.{part}", dist.Normal(mu, F.softplus(rho)).to_event(mu.dim()))

    return Model(), Guide()


def fit_label_head(model, x, y, *, steps: int = 1000, batch_size: int = 128, lr: float = 1e-2,
                   seed: int = 0) -> list[float]:
    """Fit ``model``'s Bayesian label head by SVI (``TraceMeanField_ELBO``) on encoded rows ``x``
    and labels ``y``; only the head's parameters change. Returns the loss per step (the ELBO
    over the whole data set, negated, in nats). Not differentially private (module docstring)."""
    import pyro
    from pyro.infer import TraceMeanField_ELBO

    head = _check_head(model)
    x = torch.as_tensor(x, dtype=torch.float32).to(model.device)
    y = torch.as_tensor(y, dtype=torch.long).to(model.device)
    if len(x) == 0 or len(x) != len(y):
        raise ConfigError(f"need as many labels as rows (got {len(x)} rows, {len(y)} labels), at least one")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"steps must be a positive integer, got {steps!r}")
    guide_model, guide = head_model_and_guide(head, len(x))
    elbo = TraceMeanField_ELBO()(guide_model, guide)
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    was_training = model.training
    # poutine.seed restores the CPU, numpy and random states it changes, not CUDA's: kept here.
    cuda_state = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    with pyro.poutine.seed(rng_seed=int(seed)):  # Pyro's own draws, reproducible
        for _ in range(steps):
            idx = torch.randint(len(x), (min(batch_size, len(x)),), generator=gen).to(x.device)
            opt.zero_grad(set_to_none=True)
            loss = elbo(x[idx], y[idx])
            loss.backward()
            opt.step()
            losses.append(loss.item())
    if cuda_state is not None:
        torch.cuda.set_rng_state_all(cuda_state)
    model.train(was_training)
    return losses


__all__ = ["fit_label_head", "head_model_and_guide"]
