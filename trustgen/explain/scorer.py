"""A classifier as the explainers see it: class probabilities of encoded candidates.

* a torch module on the data's units (numbers as they are, categories one-hot, images
  flattened) is differentiable: the gradient path applies (Adam in latent space, Integrated
  Gradients);
* any object with ``predict_proba`` (a scikit-learn model or pipeline) is a black box: it is
  given records as the data file holds them (a DataFrame of the schema's feature columns, in
  the schema's order; an array of them for a scikit-learn model fitted on an array; images as
  an array ``[n, pixels]``), and only its answers are used.

A Bayesian torch classifier (mean-field layers from :mod:`trustgen.models.bayes`) is averaged
over ``draws`` posterior weight draws, the same seeded draws at every call, so that the
search's objective does not move under it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch
from torch import nn

from trustgen.constraints.space import Space
from trustgen.errors import ConfigError
from trustgen.models.bayes import bayesian_layers, resample_weights, use_posterior_mean


class Scorer(ABC):
    """``probs(c)``: ``[m, k]`` class probabilities of encoded candidates ``c`` ``[m, dim]``."""

    differentiable = False

    @abstractmethod
    def probs(self, c: torch.Tensor) -> torch.Tensor:
        """The class probabilities of ``c``."""

    def draws(self, c: torch.Tensor) -> torch.Tensor:
        """``[draws, m, k]`` per posterior draw (one draw for a deterministic classifier)."""
        return self.probs(c)[None]


class TorchScorer(Scorer):
    """A torch module from units ``[m, dim]`` to logits ``[m, k]`` (differentiable)."""

    differentiable = True

    def __init__(self, model: nn.Module, space: Space, *, draws: int = 16, seed: int = 0) -> None:
        self.model, self.space = model, space
        self.bayesian = bool(bayesian_layers(model))
        self.n_draws, self.seed = (draws if self.bayesian else 1), seed

    def logits(self, c: torch.Tensor) -> torch.Tensor:
        return self.model(self.space.to_units(c))

    def draws(self, c: torch.Tensor) -> torch.Tensor:
        if not self.bayesian:
            return torch.softmax(self.logits(c), -1)[None]
        gen = torch.Generator(device="cpu").manual_seed(self.seed)  # the same draws at every call
        out = []
        try:
            for _ in range(self.n_draws):
                resample_weights(self.model, gen)
                out.append(torch.softmax(self.logits(c), -1))
        finally:
            use_posterior_mean(self.model)
        return torch.stack(out)

    def probs(self, c: torch.Tensor) -> torch.Tensor:
        return self.draws(c).mean(0)


class BlackBoxScorer(Scorer):
    """An object with ``predict_proba`` on records (feature columns, or images ``[n, pixels]``)."""

    def __init__(self, model, space: Space) -> None:
        self.model, self.space = model, space
        self.features = None if space.image else [c.name for c in space.schema.feature_columns]

    def records(self, c: torch.Tensor):
        u = self.space.to_units(c.detach().double())
        if self.space.image:
            return self.space.units_to_data(u, None).x.reshape(len(c), -1)
        placeholder = None if self.space.schema.label is None else np.zeros(len(c), dtype=np.int64)  # dropped
        frame = self.space.units_to_data(u, placeholder)[self.features]
        if hasattr(self.model, "n_features_in_") and not hasattr(self.model, "feature_names_in_"):
            return frame.to_numpy()  # a scikit-learn model fitted on an array of the feature columns
        return frame

    @torch.no_grad()
    def probs(self, c: torch.Tensor) -> torch.Tensor:
        try:
            p = np.asarray(self.model.predict_proba(self.records(c)), dtype=np.float64)
        except Exception as e:  # noqa: BLE001 - the model's own code raises anything; its message may quote a record
            raise ConfigError(f"the classifier's predict_proba failed on records of the run's schema "
                              f"({type(e).__name__}): is it fitted on these feature columns?") from None
        if p.ndim != 2 or len(p) != len(c) or not np.isfinite(p).all():
            raise ConfigError(f"the classifier's predict_proba returned {p.shape} for {len(c)} records: expected "
                              "one row of class probabilities per record")
        return torch.as_tensor(p, dtype=c.dtype, device=c.device)


def evaluation_mode(model: nn.Module) -> nn.Module:
    """``model`` in evaluation mode. A module loaded from ``torch.export`` has no train/eval
    switch (its ``eval()`` raises): the graph was exported in the mode it runs in."""
    try:
        model.eval()
    except NotImplementedError:
        pass
    return model


def make_scorer(model, space: Space, *, draws: int = 16, seed: int = 0) -> Scorer:
    """The scorer of ``model``: a torch module (gradient path) or an object with ``predict_proba``."""
    if isinstance(model, nn.Module):
        evaluation_mode(model)
        return TorchScorer(model, space, draws=draws, seed=seed)
    if callable(getattr(model, "predict_proba", None)):
        return BlackBoxScorer(model, space)
    raise ConfigError(f"the classifier must be a torch module on the data's units or have predict_proba, got "
                      f"{type(model).__name__}")


def entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of the last axis."""
    return -(p * torch.log(p.clamp_min(1e-12))).sum(-1)


__all__ = ["BlackBoxScorer", "Scorer", "TorchScorer", "entropy", "evaluation_mode", "make_scorer"]
