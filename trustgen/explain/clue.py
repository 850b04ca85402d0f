"""Explanations of uncertainty (CLUE, Antoran et al., ICLR 2021): the smallest change to a
record, on the data manifold, that makes a Bayesian classifier confident about it.

"Why is the model unsure here?" is answered by a nearby record it is sure about: what differs
between the two is what the uncertainty is about. As for counterfactuals, the search moves the
run's latent ``z`` from the input's own (:mod:`trustgen.explain.search`), by Adam steps on

    U(decode(z)) + distance * |decode(z) - x|_1 + latent * |z - z0|^2 [+ constraint violations]

where ``U`` is the entropy of the classifier's posterior predictive (``uncertainty="total"``)
or its epistemic part, the mutual information between the label and the weights
(``"epistemic"``: what more training data would remove), both over ``draws`` posterior weight
draws that stay the same at every step. Per input, the candidate with the lowest objective is
kept (judged as released: categories at their argmax); the input itself where no candidate
beats it (a record the classifier is already sure of is its own explanation).

The classifier is a Bayesian torch module on the data's units (``SchemaClassifier(...,
bayesian=True)``, or any module with mean-field layers from :mod:`trustgen.models.bayes`); with
``model=None`` it is the run's own Bayesian label head (``label_head=bayes-mlp``).

As with counterfactuals: explaining a record discloses it; using the DP-trained run does not
spend privacy budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import torch
from torch import nn

from trustgen.constraints.projection import violation
from trustgen.constraints.space import Space
from trustgen.data.encoders import Data
from trustgen.errors import ConfigError
from trustgen.explain.counterfactual import CONSTRAINT_WEIGHT
from trustgen.explain.scorer import TorchScorer, entropy, evaluation_mode
from trustgen.explain.search import changes, descend, positive_int, prepare

UNCERTAINTIES = ("total", "epistemic")
UNREACHED = 1e6  # ranks a candidate above the level after every one below it


@dataclass(frozen=True)
class ClueResult:
    """One explanation per input.

    Attributes:
        explanations: the confident records (DataFrame or ImageData, the run's schema).
        encoded: the same, encoded.
        entropy_before, entropy_after: total predictive entropy (nats) of the input and of its explanation.
        epistemic_before, epistemic_after: the mutual-information part of it.
        prediction_before, prediction_after: the classifier's most likely class.
        changed, proximity: features changed and L1 distance in scaled units (as for counterfactuals).
        path: candidates every ``record_every`` steps ``[t, n, dim]``.
    """

    explanations: Data
    encoded: torch.Tensor
    entropy_before: np.ndarray
    entropy_after: np.ndarray
    epistemic_before: np.ndarray
    epistemic_after: np.ndarray
    prediction_before: np.ndarray
    prediction_after: np.ndarray
    changed: np.ndarray
    proximity: np.ndarray
    path: np.ndarray


class _LabelHead(nn.Module):
    """The run's label head as a classifier on units (its Bayesian layers are the head's)."""

    def __init__(self, run) -> None:
        super().__init__()
        self.head, self.space = run.model.label_head, Space(run.schema)

    def forward(self, u):
        return self.head(self.space.from_units(u))


def _uncertainties(scorer: TorchScorer, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Total entropy, epistemic part and mean probabilities of candidates ``c``."""
    draws = scorer.draws(c)
    mean = draws.mean(0)
    total = entropy(mean)
    return total, total - entropy(draws).mean(0), mean


def clue(model: nn.Module | None, inputs: Data, generator, *, draws: int = 16,
         uncertainty: Literal["total", "epistemic"] = "total", labels=None, immutable: Sequence[str] = (),
         constraints=None, steps: int = 300, lr: float = 0.05, distance: float = 0.05, latent: float = 0.01,
         below: float | None = None, record_every: int = 10, seed: int = 0) -> ClueResult:
    """CLUEs of ``inputs`` for the Bayesian classifier ``model`` (module docstring).

    Args:
        model: a Bayesian torch classifier on units, or None for the run's Bayesian label head.
        inputs: records in the run's schema.
        generator: the trained run whose latent space is searched.
        draws: posterior weight draws per evaluation (the same draws throughout).
        uncertainty: "total" (predictive entropy) or "epistemic" (mutual information).
        labels, immutable, constraints, steps, lr, latent, record_every: as for
            :func:`~trustgen.explain.counterfactual.counterfactual`.
        distance: the weight of the L1 distance to the input.
        below: an uncertainty level (nats): keep the closest candidate below it (the objective
            still steers the search); None: the candidate of lowest objective.
        seed: the posterior draws.
    """
    run = generator
    run.model.eval()
    positive_int("draws", draws)
    if draws < 2:
        raise ConfigError("draws must be at least 2: uncertainty is the spread between posterior draws")
    for name, v in (("steps", steps), ("record_every", record_every)):
        positive_int(name, v)
    if below is not None and (isinstance(below, bool) or not isinstance(below, (int, float)) or not below > 0):
        raise ConfigError(f"below must be a positive uncertainty level in nats, got {below!r}")
    if uncertainty not in UNCERTAINTIES:
        raise ConfigError(f"uncertainty must be one of {', '.join(UNCERTAINTIES)}, got {uncertainty!r}")
    if model is None:
        if getattr(run.model, "label_head", None) is None:
            raise ConfigError("model=None explains the run's label head, and this run has none: train it with "
                              "--option label_head=bayes-mlp, or pass a Bayesian classifier")
        model = _LabelHead(run)
    if not isinstance(model, nn.Module):
        raise ConfigError("CLUE needs a Bayesian torch classifier (its gradient and its posterior draws), got "
                          f"{type(model).__name__}")
    model.to(run.model.device)
    problem = prepare(run, inputs, labels=labels, immutable=immutable, constraints=constraints)
    scorer = TorchScorer(evaluation_mode(model), problem.space, draws=draws, seed=seed)
    if not scorer.bayesian:
        raise ConfigError("CLUE explains a Bayesian classifier's uncertainty, and this one has no posterior "
                          "(no mean-field layers): use SchemaClassifier(..., bayesian=True), or a run with "
                          "label_head=bayes-mlp and model=None")
    pick = 0 if uncertainty == "total" else 1

    def objective(c):
        return _uncertainties(scorer, c)[pick] + distance * (c - problem.x).abs().sum(1)

    def loss(c, z):
        out = objective(c) + latent * (z - z0).pow(2).flatten(1).sum(1)
        if problem.atoms:
            out = out + CONSTRAINT_WEIGHT * violation(problem.atoms, c.double(), problem.y).to(c.dtype)
        return out

    def judge(c, rows):
        with torch.no_grad():
            rank = objective(c)
            if below is not None:  # below the level, the closest; above it, the lowest objective, after those
                rank = torch.where(_uncertainties(scorer, c)[pick] < below, (c - problem.x).abs().sum(1),
                                   UNREACHED + rank)
            return torch.ones(len(c), dtype=torch.bool, device=c.device), rank

    z0 = problem.start()
    with torch.no_grad():
        total0, epi0, p0 = _uncertainties(scorer, problem.x)
    found = descend(problem, z0, loss, judge, steps=steps, lr=lr, record_every=record_every)
    with torch.no_grad():  # an input no decoding improves on (one the classifier is already sure of) stands as is
        stays = objective(problem.x) <= objective(found.best)
        if below is not None:
            u_x, u_best = _uncertainties(scorer, problem.x)[pick], _uncertainties(scorer, found.best)[pick]
            stays = (u_x < below) | ((u_best >= below) & stays)
        best = torch.where(stays[:, None], problem.x, found.best)
    data, released = problem.released(best)
    data = problem.keep_exact(data, best, inputs, np.arange(problem.n))
    with torch.no_grad():
        total1, epi1, p1 = _uncertainties(scorer, released)
    changed, proximity = changes(problem, released)
    cpu = lambda t: t.cpu().numpy()  # noqa: E731
    return ClueResult(data, released.reshape((problem.n,) + problem.shape).cpu(), cpu(total0), cpu(total1),
                      cpu(epi0), cpu(epi1), cpu(p0.argmax(1)), cpu(p1.argmax(1)), changed, proximity, found.path)


__all__ = ["ClueResult", "UNCERTAINTIES", "clue"]
