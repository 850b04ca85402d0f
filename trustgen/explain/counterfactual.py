"""On-manifold counterfactuals: the closest record the generative model would produce that a
classifier assigns to the target class.

For inputs ``x`` and a differentiable classifier ``model`` (a torch module on the data's units:
numbers as they are, categories one-hot, images flattened), the search starts from the run's
latent of ``x`` (``invert``: the VAE encoder, DDIM inversion, GAN inversion) and moves it by
Adam steps on

    cross_entropy(model(units(decode(z))), target) + proximity * |decode(z) - x|_1 + latent * |z - z0|^2

where ``decode`` is the soft decoding (differentiable) and ``|.|_1`` is taken in the encoder's
scaled units (every number spans [-1, 1] of its public bounds: a standardisation that reads
no data). Immutable columns are held at the input's values in every decoded candidate, so the
classifier never sees them change. Per input, the closest candidate that reaches the target
with probability above 0.5 is kept. Then (``sparsify``) changes are reverted to the input's
values where the target does not need them (greedily: the change that helps the target most
first, until it holds): fewer features change, at the price of a record the model did not
decode exactly.

Explaining a record discloses that record to whoever sees the explanation: the
counterfactual is computed from it. The generative run itself is a DP release, so using it
costs no privacy budget.

Example:
    >>> res = counterfactual(clf, inputs=rows, target=1, generator=run)  # doctest: +SKIP
    >>> res.valid.mean(), res.changed.mean()  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from trustgen.constraints.space import Space
from trustgen.data.encoders import Data, make_encoder
from trustgen.errors import ConfigError

THRESHOLD = 0.5  # a counterfactual is valid when the classifier gives the target more than this


@dataclass(frozen=True)
class CounterfactualResult:
    """One counterfactual per input.

    Attributes:
        counterfactuals: the decoded records (DataFrame or ImageData, the run's schema).
        encoded: the same, encoded ``[n, ...]``.
        valid: the classifier gives the target probability > 0.5.
        probs_before, probs_after: the classifier's class probabilities ``[n, k]``.
        changed: features that differ from the input (numbers by more than 1% of their range;
            a categorical column counts once; images: pixels by more than 1% of the range).
        proximity: L1 distance to the input in the scaled units (each number's range is 2).
        path: the encoded candidate every ``record_every`` steps, ``[t, n, ...]``.
    """

    counterfactuals: Data
    encoded: torch.Tensor
    valid: np.ndarray
    probs_before: np.ndarray
    probs_after: np.ndarray
    changed: np.ndarray
    proximity: np.ndarray
    path: np.ndarray


def _features(space: Space, dim: int) -> list[np.ndarray]:
    """Encoded coordinates of each feature: a number, a category block, or a pixel."""
    if space.image:
        return [np.array([i]) for i in range(dim)]
    feats = [np.array([i]) for i in space.numeric.values()]
    feats += [np.arange(start, start + len(cats)) for start, cats in space.categorical.values()]
    return sorted(feats, key=lambda f: f[0])


def _immutable_mask(space: Space, immutable: Sequence[str], dim: int) -> torch.Tensor:
    mask = torch.zeros(dim, dtype=torch.bool)
    for name in immutable:
        if space.image:
            raise ConfigError("immutable columns apply to tables; an image has one column, its pixels")
        if name in space.numeric:
            mask[space.numeric[name]] = True
        elif name in space.categorical:
            start, cats = space.categorical[name]
            mask[start:start + len(cats)] = True
        else:
            known = sorted([*space.numeric, *space.categorical])
            raise ConfigError(f"immutable column {name!r} is not a feature of the schema (features: {known})")
    return mask


def _targets(target: Any, n: int, k: int) -> torch.Tensor:
    t = torch.as_tensor(np.broadcast_to(np.asarray(target), (n,)).copy())
    if t.dtype.is_floating_point or t.dtype == torch.bool or (t < 0).any() or (t >= k).any():
        raise ConfigError(f"target must be class indices in 0..{k - 1} (one, or one per input), got {target!r}")
    return t.long()


def counterfactual(model: nn.Module, inputs: Data, target: Any, generator, *, labels: Any = None,
                   immutable: Sequence[str] = (), steps: int = 300, lr: float = 0.05, proximity: float = 0.2,
                   latent: float = 0.01, sparsify: bool | None = None, record_every: int = 10) -> CounterfactualResult:
    """Counterfactuals of ``inputs`` towards class ``target`` of ``model`` (module docstring).

    Args:
        model: the classifier, a torch module from units ``[n, dim]`` to logits ``[n, k]``.
        inputs: records in the run's schema (a DataFrame with its columns, or ImageData).
        target: the class index to reach, one for all or one per input.
        generator: the trained :class:`~trustgen.run.Run` whose latent space is searched.
        labels: the generator's conditioning labels (None: the inputs' own labels).
        immutable: columns held at their input values.
        steps, lr: Adam steps on the latent and their size.
        proximity, latent: weights of the L1 distance to the input and of the latent's
            squared distance to its start.
        sparsify: revert changes that the target does not need. None (default): on tables
            only; on images a few changed pixels are an adversarial example, not a realistic
            image (digits: 6 of 64 pixels, against 45 for the decoded counterfactual).
    """
    run = generator
    gm = run.model
    space = Space(run.schema)
    enc = make_encoder(run.schema)
    x_np, y_np = enc.transform(inputs)
    dev = gm.device
    x = torch.as_tensor(x_np, dtype=torch.float32, device=dev)
    n = len(x)
    if n == 0:
        raise ConfigError("no inputs to explain")
    if labels is not None:
        y_np = np.broadcast_to(np.asarray(labels), (n,)).copy()
    y = None if y_np is None else torch.as_tensor(y_np, dtype=torch.long, device=dev)
    for name, v in (("steps", steps), ("record_every", record_every)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{name} must be a positive integer, got {v!r}")
    model = model.to(dev).eval()
    gm.eval()
    to_units = lambda e: space.to_units(e.reshape(len(e), -1))  # noqa: E731
    with torch.no_grad():
        before = torch.softmax(model(to_units(x)), 1)
    t = _targets(target, n, before.shape[1]).to(dev)
    fixed = _immutable_mask(space, immutable, x[0].numel()).to(dev)
    flat_x = x.reshape(n, -1)
    numbers = torch.zeros(flat_x.shape[1], dtype=torch.bool, device=dev)
    numbers[list(space.numeric.values())] = True  # the soft decode leaves numbers unclipped
    if space.image:
        numbers[:] = True

    def candidate(z):
        out = gm.generate(z, y, hard=False).reshape(n, -1)
        out = torch.where(numbers, out.clamp(-1.0, 1.0), out)  # within the schema's bounds
        return torch.where(fixed, flat_x, out)

    with torch.no_grad():
        z0 = gm.invert(x, y, sampler=None).detach()
    z = z0.clone()
    m, v = torch.zeros_like(z), torch.zeros_like(z)
    best = flat_x.clone()
    best_dist = torch.full((n,), float("inf"), device=dev)
    path = []
    for step in range(1, steps + 1):
        with torch.enable_grad():
            z.requires_grad_(True)
            c = candidate(z)
            logits = model(to_units(c))
            dist = (c - flat_x).abs().sum(1)
            loss = F.cross_entropy(logits, t, reduction="none") + proximity * dist + latent * (z - z0).pow(2).sum(1)
            (g,) = torch.autograd.grad(loss.sum(), z)
        with torch.no_grad():
            ok = torch.softmax(logits, 1).gather(1, t[:, None])[:, 0] > THRESHOLD
            better = ok & (dist < best_dist)
            best[better], best_dist[better] = c[better].detach(), dist[better].detach()
            if step % record_every == 0:
                path.append(c.detach().cpu().numpy())
        z = z.detach()
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        z = z - lr * (m / (1 - 0.9 ** step)) / ((v / (1 - 0.999 ** step)).sqrt() + 1e-8)
    found = torch.isfinite(best_dist)
    if sparsify is None:
        sparsify = not space.image
    if sparsify:
        best = _sparsify(model, to_units, best, flat_x, t, found, _features(space, flat_x.shape[1]))
    with torch.no_grad():
        after = torch.softmax(model(to_units(best)), 1)
    valid = (after.gather(1, t[:, None])[:, 0] > THRESHOLD).cpu().numpy()
    encoded = best.reshape(x.shape).cpu()
    data = space.units_to_data(to_units(best.double()), y_np)
    feats = _features(space, flat_x.shape[1])
    if not space.image:  # a feature the counterfactual left alone keeps the input's exact value
        names = {**{i: n for n, i in space.numeric.items()}, **{s: n for n, (s, _) in space.categorical.items()}}
        same = (best == flat_x).cpu().numpy()
        for f in feats:
            kept = same[:, f].all(1)
            name = names[int(f[0])]
            data.loc[kept, name] = inputs[name].to_numpy()[kept]
    diff = (best - flat_x).abs().cpu().numpy()
    changed = np.array([sum(bool(diff[i, f].max() > 0.02) for f in feats) for i in range(n)])
    return CounterfactualResult(data, encoded, valid, before.cpu().numpy(), after.cpu().numpy(), changed,
                                diff.sum(1), np.stack(path) if path else np.zeros((0, n, flat_x.shape[1])))


@torch.no_grad()
def _sparsify(model, to_units, best, x, t, found, feats) -> torch.Tensor:
    """The fewest of the counterfactual's changes the target needs, greedily: start from the
    input and take, round by round, the one change that raises the target's probability most
    (all remaining changes tried in one batch), until the target holds. A counterfactual that
    its changes cannot make valid one by one is kept whole."""
    best = best.clone()
    for i in torch.nonzero(found).flatten().tolist():
        left = [f for f in feats if float((best[i, f] - x[i, f]).abs().sum()) > 0]
        trial = x[i:i + 1].clone()
        while left:
            tries = trial.repeat(len(left), 1)
            for r, f in enumerate(left):
                tries[r, f] = best[i, f]
            p = torch.softmax(model(to_units(tries)), 1)[:, t[i]]
            r = int(p.argmax())
            trial = tries[r:r + 1]
            left.pop(r)
            if p[r] > THRESHOLD:
                best[i:i + 1] = trial
                break
    return best


__all__ = ["CounterfactualResult", "THRESHOLD", "counterfactual"]
