"""A post-hoc baseline: last-layer Laplace approximation of a deterministic label head.

For a trained head ``logits = W phi(x) + b`` (``label_head=mlp``), the posterior over the last
layer ``theta = [W, b]`` is approximated by a Gaussian at the trained weights with precision
``H = sum_i J_i^T (diag(p_i) - p_i p_i^T) J_i + prior_precision * I`` (the generalised
Gauss-Newton Hessian of the cross-entropy, exact for the last layer's softmax), and the
prediction averages the softmax over draws of ``theta``. It costs one pass over the rows and
one ``k(d+1)``-square solve: no retraining.

Fitting reads the labelled rows directly, with no privacy mechanism: use it on a non-private
run, or fit it on public data. docs/uncertainty.md compares it with the mean-field head.

Example:
    >>> la = LastLayerLaplace().fit(run.model, x_train, y_train)  # doctest: +SKIP
    >>> la.predict_proba(x_test).shape  # doctest: +SKIP
    (171, 2)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from trustgen.errors import ConfigError


class LastLayerLaplace:
    """Args: ``prior_precision``: of the zero-mean Gaussian prior on each last-layer weight;
    ``draws``: samples of the last layer averaged by :meth:`predict_proba`; ``seed``: of them."""

    def __init__(self, prior_precision: float = 1.0, draws: int = 64, seed: int = 0) -> None:
        self.prior_precision, self.draws, self.seed = prior_precision, draws, seed

    def fit(self, model, x, y) -> "LastLayerLaplace":
        head = getattr(model, "label_head", None)
        if not isinstance(head, nn.Sequential) or not isinstance(head[-1], nn.Linear):
            raise ConfigError("last-layer Laplace needs a deterministic label head (--option label_head=mlp)")
        if not (np.isfinite(self.prior_precision) and self.prior_precision > 0):
            raise ConfigError(f"prior_precision must be positive, got {self.prior_precision!r}")
        self.model_ = model
        last = head[-1]
        phi = self._features(x)
        p = torch.softmax(phi @ self._theta(last).T, 1)
        k, d = p.shape[1], phi.shape[1]
        # sum_i (diag(p_i) - p_i p_i^T) kron phi_i phi_i^T, as a [k, d, k, d] tensor
        a = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
        h = torch.einsum("nab,ni,nj->aibj", a, phi, phi).reshape(k * d, k * d)
        h = h + self.prior_precision * torch.eye(k * d, dtype=h.dtype)
        self.mean_ = self._theta(last).reshape(-1)
        self.scale_tril_ = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)))
        self.shape_ = (k, d)
        return self

    def _theta(self, last: nn.Linear) -> torch.Tensor:
        return torch.cat([last.weight, last.bias[:, None]], 1).detach().double().cpu()

    @torch.no_grad()
    def _features(self, x) -> torch.Tensor:
        head = self.model_.label_head
        x = torch.as_tensor(x, dtype=torch.float32).to(self.model_.device).flatten(1)
        phi = head[:-1](x).double().cpu()
        return torch.cat([phi, torch.ones(len(phi), 1, dtype=phi.dtype)], 1)

    @torch.no_grad()
    def predict_proba(self, x) -> np.ndarray:
        """Class probabilities ``[n, k]``: the softmax averaged over last-layer draws."""
        if not hasattr(self, "mean_"):
            raise ConfigError("LastLayerLaplace is not fitted: call fit(model, x, y) first")
        phi = self._features(x)
        gen = torch.Generator().manual_seed(self.seed)
        eps = torch.randn(self.draws, len(self.mean_), generator=gen, dtype=torch.float64)
        thetas = (self.mean_ + eps @ self.scale_tril_.T).reshape(self.draws, *self.shape_)
        return torch.softmax(torch.einsum("nd,skd->snk", phi, thetas), 2).mean(0).numpy()


__all__ = ["LastLayerLaplace"]
