"""On-manifold counterfactuals: the closest record the generative model would produce that a
classifier assigns to the target class.

For inputs ``x`` and a classifier, the search starts from the run's latent of ``x``
(``invert``: the VAE encoder, DDIM inversion, GAN inversion) and moves the latent ``z``
(:mod:`trustgen.explain.search`):

* a differentiable classifier (a torch module on the data's units): Adam steps on

      -log p_target(decode(z)) + proximity * |decode(z) - x|_1 + latent * |z - z0|^2
          + CONSTRAINT_WEIGHT * violation(decode(z)) [+ diversity between an input's candidates]

  through the soft decoding;
* a black box (anything with ``predict_proba``, a scikit-learn model): seeded latents on
  growing spheres around ``z0``, then bisection towards ``z0``. The gradient path falls back to
  it for the inputs its descent did not bring to the target.

``|.|_1`` is taken in the encoder's scaled units (every number spans [-1, 1] of its public
bounds: a standardisation that reads no data). Immutable columns are held at the input's values
in every candidate, numbers stay within their bounds, and with ``constraints`` a candidate
counts only where every hard rule holds. Per input, the closest candidate that the classifier
gives the target with probability above ``threshold`` (0.5) is kept; candidates are judged as released
(categories at their argmax, integers rounded). An input the classifier already gives the target
is its own counterfactual (nothing changes). Then (``sparsify``) changes are reverted to the
input's values where the target does not need them (greedily: the change that helps the target
most first, until it holds): fewer features change, at the price of a record the model did not
decode exactly.

``n_counterfactuals=k`` searches ``k`` times per input, from the input's latent and from
``k - 1`` seeded perturbations of it, with a penalty on candidates of one input that are close
to each other (``diversity``; gradient path).

Explaining a record discloses that record to whoever sees the explanation: the
counterfactual is computed from it. The generative run itself is a DP release, so using it
costs no privacy budget.

Example:
    >>> res = counterfactual(clf, inputs=rows, target=1, generator=run)  # doctest: +SKIP
    >>> res.valid.mean(), res.changed.mean()  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
import torch
from torch import nn

from trustgen.constraints.projection import violation
from trustgen.data.encoders import Data
from trustgen.errors import ConfigError
from trustgen.explain.scorer import Scorer, make_scorer
from trustgen.explain.search import Problem, changes, descend, features, positive_int, prepare, shells

THRESHOLD = 0.5  # by default a counterfactual is valid when the classifier gives the target more than this
CONSTRAINT_WEIGHT = 10.0  # a violated rule costs more than any distance the search trades it for
START_SPREAD = 0.5  # the latent perturbation of the extra starts of n_counterfactuals > 1
METHODS = ("auto", "gradient", "sampling")


@dataclass(frozen=True)
class CounterfactualResult:
    """``n_counterfactuals`` per input, query-major (rows ``i * k`` to ``i * k + k - 1`` for input ``i``).

    Attributes:
        counterfactuals: the records (DataFrame or ImageData, the run's schema).
        encoded: the same, encoded ``[m, ...]``.
        query: the input each row explains.
        valid: the classifier gives the target probability > ``threshold`` (and every hard constraint holds).
        probs_before, probs_after: the classifier's class probabilities ``[m, k]``.
        changed: features that differ from the input (numbers by more than 1% of their range;
            a categorical column counts once; images: pixels by more than 1% of the range).
        proximity: L1 distance to the input in the scaled units (each number's range is 2).
        path: candidates during the search ``[t, m, ...]`` (every ``record_every`` steps, or
            per radius and bisection step for a black box).
        method: "gradient" or "sampling".
    """

    counterfactuals: Data
    encoded: torch.Tensor
    query: np.ndarray
    valid: np.ndarray
    probs_before: np.ndarray
    probs_after: np.ndarray
    changed: np.ndarray
    proximity: np.ndarray
    path: np.ndarray
    method: str


def _targets(target: Any, n: int, k: int) -> torch.Tensor:
    try:
        t = torch.as_tensor(np.broadcast_to(np.asarray(target), (n,)).copy())
    except (TypeError, ValueError, RuntimeError):  # a name, or a list of the wrong length
        raise ConfigError(f"target must be class indices in 0..{k - 1} (one, or one per input), got {target!r}") \
            from None
    if t.dtype.is_floating_point or t.dtype == torch.bool or (t < 0).any() or (t >= k).any():
        raise ConfigError(f"target must be class indices in 0..{k - 1} (one, or one per input), got {target!r}")
    return t.long()


def counterfactual(model: nn.Module, inputs: Data, target: Any, generator, *, labels: Any = None,
                   immutable: Sequence[str] = (), constraints=None, n_counterfactuals: int = 1,
                   diversity: float = 1.0, method: Literal["auto", "gradient", "sampling"] = "auto",
                   steps: int = 300, lr: float = 0.05, proximity: float = 0.2, latent: float = 0.01,
                   sparsify: bool | None = None, threshold: float = THRESHOLD, record_every: int = 10,
                   seed: int = 0) -> CounterfactualResult:
    """Counterfactuals of ``inputs`` towards class ``target`` of ``model`` (module docstring).

    Args:
        model: the classifier: a torch module from units ``[n, dim]`` to logits ``[n, k]``, or an
            object with ``predict_proba`` on records (:mod:`trustgen.explain.scorer`).
        inputs: records in the run's schema (a DataFrame with its columns, or ImageData).
        target: the class index to reach, one for all or one per input.
        generator: the trained :class:`~trustgen.run.Run` whose latent space is searched.
        labels: the generator's conditioning labels (None: the inputs' own labels).
        immutable: columns held at their input values.
        constraints: a :class:`~trustgen.constraints.language.ConstraintSet` (or a list of
            constraints) the counterfactuals must satisfy (hard rules) or are pulled towards (soft).
        n_counterfactuals, diversity: searches per input, and the weight that keeps them apart.
        method: "gradient" (a torch module), "sampling" (any classifier), or "auto".
        steps, lr: Adam steps on the latent and their size (gradient path).
        proximity, latent: weights of the L1 distance to the input and of the latent's
            squared distance to its start.
        sparsify: revert changes that the target does not need. None (default): on tables
            only; on images a few changed pixels are an adversarial example, not a realistic
            image (digits: 6 of 64 pixels, against 41 for the decoded counterfactual).
        threshold: the target probability a counterfactual must exceed (0.5: it crosses the
            decision boundary; higher: it goes further into the target class).
        seed: the extra starts' perturbations and the black-box search's draws.
    """
    run = generator
    run.model.eval()
    k = positive_int("n_counterfactuals", n_counterfactuals)
    for name, v in (("steps", steps), ("record_every", record_every)):
        positive_int(name, v)
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold < 1:
        raise ConfigError(f"threshold must be a probability in (0, 1), got {threshold!r}")
    if isinstance(model, nn.Module):
        model.to(run.model.device)
    base = prepare(run, inputs, labels=labels, immutable=immutable, constraints=constraints)
    scorer = make_scorer(model, base.space, seed=seed)
    if method == "auto":
        method = "gradient" if scorer.differentiable else "sampling"
    if method == "gradient" and not scorer.differentiable:
        raise ConfigError("method 'gradient' needs a torch classifier; a predict_proba black box takes 'sampling'")
    with torch.no_grad():
        before = scorer.probs(base.x)
    t = _targets(target, base.n, before.shape[1]).to(base.x.device).repeat_interleave(k)
    problem = base.repeat(k)
    query = np.repeat(np.arange(base.n), k)
    z0 = problem.start()
    if k > 1:  # the first search of each input starts at its own latent, the others near it
        gen = torch.Generator(device="cpu").manual_seed(seed)
        spread = START_SPREAD * torch.randn(z0.shape, generator=gen).to(z0)
        spread[::k] = 0
        z0 = z0 + spread
    rows_all = torch.arange(problem.n, device=z0.device)

    def judge_for(prob: Problem, tt: torch.Tensor):
        def judge(c, rows):
            with torch.no_grad():
                p = scorer.probs(c)
            return p[torch.arange(len(c)), tt[rows]] > threshold, (c - prob.x[rows]).abs().sum(1)
        return judge

    if method == "gradient":
        start = z0.clone()

        def loss(c, z):
            p = scorer.probs(c)
            out = -torch.log(p[rows_all, t].clamp_min(1e-12)) + proximity * (c - problem.x).abs().sum(1) \
                + latent * (z - start).pow(2).flatten(1).sum(1)
            if problem.atoms:
                out = out + CONSTRAINT_WEIGHT * violation(problem.atoms, c.double(), problem.y).to(c.dtype)
            if k > 1 and diversity:
                out = out + diversity * _closeness(c, k)
            return out

        found = descend(problem, z0, loss, judge_for(problem, t), steps=steps, lr=lr, record_every=record_every)
        missed = torch.nonzero(~found.found).flatten()
        if len(missed):  # where the gradient stalled (a flat or far boundary), the black-box search tries
            sub = problem.take(missed)
            again = shells(sub, z0[missed], judge_for(sub, t[missed]), seed=seed)
            found.best[missed], found.found[missed] = again.best, again.found
    else:
        found = shells(problem, z0, judge_for(problem, t), seed=seed)
    with torch.no_grad():  # an input the classifier already gives the target is its own counterfactual
        already = (before[torch.as_tensor(query, device=before.device), t] > threshold) & \
            problem.feasible(problem.x, rows_all)
    best = torch.where(already[:, None], problem.x, found.best)
    found.found |= already
    if sparsify is None:
        sparsify = not problem.space.image
    if sparsify:
        best = _sparsify(scorer, problem, best, t, found.found, features(problem.space, best.shape[1]), threshold)
    data, released = problem.released(best)
    with torch.no_grad():
        after = scorer.probs(released)
    valid = (after.gather(1, t[:, None])[:, 0] > threshold) & problem.feasible(released, rows_all)
    data = problem.keep_exact(data, best, inputs, query)
    changed, distances = changes(problem, released)
    return CounterfactualResult(data, released.reshape((problem.n,) + problem.shape).cpu(), query,
                                valid.cpu().numpy(), before.cpu().numpy()[query], after.cpu().numpy(), changed,
                                distances, found.path, method)


def _closeness(c: torch.Tensor, k: int) -> torch.Tensor:
    """Per candidate, the mean of ``1 / (1 + L1)`` to the other candidates of its input (DiCE's
    kernel): high when they coincide, falling as they move apart."""
    g = c.reshape(-1, k, c.shape[1])
    d = (g[:, :, None] - g[:, None]).abs().sum(-1)
    near = 1.0 / (1.0 + d) * (1 - torch.eye(k, device=c.device))
    return (near.sum(-1) / (k - 1)).reshape(-1)


@torch.no_grad()
def _sparsify(scorer: Scorer, problem: Problem, best, t, found, feats, threshold: float) -> torch.Tensor:
    """The fewest of the counterfactual's changes the target needs, greedily: start from the
    input and take, round by round, the one change that raises the target's probability most
    (all remaining changes tried in one batch), until the target holds, with the hard
    constraints. A counterfactual that its changes cannot make valid one by one is kept whole."""
    best, x = best.clone(), problem.x
    for i in torch.nonzero(found).flatten().tolist():
        left = [f for f in feats if float((best[i, f] - x[i, f]).abs().sum()) > 0]
        trial = x[i:i + 1].clone()
        while left:
            tries = trial.repeat(len(left), 1)
            for r, f in enumerate(left):
                tries[r, f] = best[i, f]
            p = scorer.probs(tries)[:, t[i]]
            rows = torch.full((len(tries),), i, device=x.device)
            p = torch.where(problem.feasible(tries, rows), p, p - 1)  # a rule broken: accepted never, tried last
            r = int(p.argmax())
            trial = tries[r:r + 1]
            left.pop(r)
            if p[r] > threshold:
                best[i:i + 1] = trial
                break
    return best


__all__ = ["CounterfactualResult", "THRESHOLD", "counterfactual"]
