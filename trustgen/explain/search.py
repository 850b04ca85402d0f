"""The latent search that counterfactuals and CLUE share: candidates are the run's decodings of
a latent ``z``, moved from the input's own latent ``z0`` (the VAE encoder, DDIM inversion, GAN
inversion), with immutable columns held, numbers within their public bounds and, when given,
the constraints holding.

Two ways to move ``z``:

* :func:`descend`, for differentiable classifiers: Adam steps on a per-candidate loss through
  the soft decoding;
* :func:`shells`, for black boxes that only answer ``predict_proba`` (a scikit-learn model):
  seeded random latents on growing spheres around ``z0`` ("growing spheres" in latent space),
  then a bisection towards ``z0`` along the line to the closest hit.

Both keep, per row, the candidate that a ``judge`` accepts with the lowest rank (the distance to
the input for counterfactuals, the objective for CLUE). A candidate is judged as it would be
released: categories one-hot at their argmax.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from trustgen.constraints.atoms import all_hold
from trustgen.constraints.space import Space
from trustgen.data.encoders import Data, make_encoder
from trustgen.errors import ConfigError

# judge(candidate [m, dim] encoded, rows [m] indices into the problem) -> (accepted [m] bool, rank [m])
Judge = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Problem:
    """The inputs of one search, encoded: ``x`` (flat ``[n, dim]``), their generator labels
    ``y``, the immutable coordinates ``fixed``, and the constraints' encoded atoms."""

    run: object
    space: Space
    x: torch.Tensor
    shape: tuple
    y: torch.Tensor | None
    labels: np.ndarray | None
    fixed: torch.Tensor
    numbers: torch.Tensor
    blocks: list[tuple[int, int]]
    atoms: list
    hard: list

    @property
    def n(self) -> int:
        return len(self.x)

    def candidate(self, z: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """The soft decoding of ``z`` (rows ``rows`` of the problem), numbers clamped to their
        bounds and immutable coordinates at the input's values (differentiable in ``z``)."""
        y = self.y if self.y is None or rows is None else self.y[rows]
        x = self.x if rows is None else self.x[rows]
        out = self.run.model.generate(z, y, hard=False).reshape(len(z), -1)
        out = torch.where(self.numbers, out.clamp(-1.0, 1.0), out)
        return torch.where(self.fixed, x, out)

    def harden(self, c: torch.Tensor) -> torch.Tensor:
        """The record a candidate would be released as: categories one-hot at their argmax,
        integer columns rounded (in the data's units), so what is judged is what is released."""
        integer = torch.as_tensor(self.space.integer, device=c.device) if not self.space.image else None
        if not self.blocks and (integer is None or not bool(integer.any())):
            return c
        c = c.clone()
        if integer is not None and bool(integer.any()):
            u = self.space.to_units(c.double())
            low, high = (torch.as_tensor(b, dtype=u.dtype, device=u.device) for b in (self.space.low, self.space.high))
            whole = torch.minimum(torch.maximum(u, low), high).round()
            # a coordinate already on a whole number (an input's own value) keeps its bits
            moved = integer & ((u - whole).abs() > 1e-3)
            c = torch.where(moved, self.space.from_units(whole).to(c.dtype), c)
        for start, k in self.blocks:
            block = c[:, start:start + k]
            c[:, start:start + k] = torch.nn.functional.one_hot(block.argmax(1), k).to(c.dtype)
        return c

    def feasible(self, c: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The hard constraints hold (True when there are none)."""
        if not self.hard:
            return torch.ones(len(c), dtype=torch.bool, device=c.device)
        y = None if self.y is None else self.y[rows]
        return all_hold(self.hard, c.to(torch.float64), y)

    def released(self, c: torch.Tensor) -> tuple[Data, torch.Tensor]:
        """Candidates as records (integers rounded, categories by argmax) and those records back
        in encoded form: what validity is checked on."""
        data = self.space.units_to_data(self.space.to_units(c.double()), self.labels)
        enc, _ = make_encoder(self.space.schema).transform(data)
        if not self.space.image:  # the numbers exactly as released
            enc = self.space.from_units(self.space.data_units(data)).numpy()
        return data, torch.as_tensor(enc, dtype=c.dtype, device=c.device).reshape(len(c), -1)

    def keep_exact(self, data: Data, best: torch.Tensor, inputs: Data, query: np.ndarray) -> Data:
        """``data`` (the released ``best``) with every feature that ``best`` left at the input's
        value set to the input's exact value: encoding and decoding through float32 would move
        a number by a rounding error, and an unchanged feature must read unchanged."""
        if self.space.image:
            return data
        names = {**{i: n for n, i in self.space.numeric.items()},
                 **{s: n for n, (s, _) in self.space.categorical.items()}}
        same = (best == self.x).cpu().numpy()
        data = data.copy()
        for f in features(self.space, self.x.shape[1]):
            kept = same[:, f].all(1)
            name = names[int(f[0])]
            data.loc[kept, name] = inputs[name].to_numpy()[query][kept]
        return data

    def take(self, rows: torch.Tensor) -> "Problem":
        """The rows ``rows`` alone."""
        return Problem(self.run, self.space, self.x[rows], self.shape, None if self.y is None else self.y[rows],
                       None if self.labels is None else self.labels[rows.cpu().numpy()], self.fixed, self.numbers,
                       self.blocks, self.atoms, self.hard)

    def repeat(self, k: int) -> "Problem":
        """Each row ``k`` times in a row (query-major): ``k`` searches per input."""
        return Problem(self.run, self.space, self.x.repeat_interleave(k, 0), self.shape,
                       None if self.y is None else self.y.repeat_interleave(k, 0),
                       None if self.labels is None else np.repeat(self.labels, k), self.fixed, self.numbers,
                       self.blocks, self.atoms, self.hard)

    def start(self) -> torch.Tensor:
        with torch.no_grad():
            return self.run.model.invert(self.x.reshape((self.n,) + self.shape), self.y, sampler=None).detach()


def prepare(run, inputs: Data, *, labels=None, immutable: Sequence[str] = (), constraints=None) -> Problem:
    """Encode ``inputs`` for a search in ``run``'s latent space (validates every argument)."""
    from trustgen.constraints.feasibility import forced
    from trustgen.constraints.language import ConstraintSet
    from trustgen.constraints.projection import to_encoded
    from trustgen.sampling.constrained import modules_to

    space = Space(run.schema)
    x_np, y_np = make_encoder(run.schema).transform(inputs)
    dev = run.model.device
    x = torch.as_tensor(x_np, dtype=torch.float32, device=dev)
    n = len(x)
    if n == 0:
        raise ConfigError("no inputs to explain")
    if labels is not None:
        y_np = np.broadcast_to(np.asarray(labels), (n,)).copy()
        if y_np.dtype.kind not in "iu" or (y_np < 0).any() or (y_np >= max(run.schema.n_classes, 1)).any():
            raise ConfigError(f"labels must be class indices of the run's schema, got {labels!r}")
    y = None if y_np is None else torch.as_tensor(y_np, dtype=torch.long, device=dev)
    flat = x.reshape(n, -1)
    dim = flat.shape[1]
    numbers = torch.zeros(dim, dtype=torch.bool, device=dev)
    numbers[list(space.numeric.values())] = True  # the soft decode leaves numbers unclipped
    if space.image:
        numbers[:] = True
    atoms, hard = [], []
    if constraints is not None:
        cs = constraints if isinstance(constraints, ConstraintSet) else ConstraintSet(list(constraints))
        modules_to(cs.constraints, dev)  # a learned rule's module runs where the candidates are
        compiled = cs.compile(space)
        atoms = to_encoded(compiled + forced(compiled, space), space)
        hard = [a for a in atoms if a.hard]
    blocks = [] if space.image else [(start, len(cats)) for start, cats in space.categorical.values()]
    return Problem(run, space, flat, tuple(x.shape[1:]), y, y_np, immutable_mask(space, immutable, dim).to(dev),
                   numbers, blocks, atoms, hard)


def immutable_mask(space: Space, immutable: Sequence[str], dim: int) -> torch.Tensor:
    """The encoded coordinates of the ``immutable`` columns."""
    if isinstance(immutable, str):
        immutable = [immutable]
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


def features(space: Space, dim: int) -> list[np.ndarray]:
    """Encoded coordinates of each feature: a number, a category block, or a pixel."""
    if space.image:
        return [np.array([i]) for i in range(dim)]
    feats = [np.array([i]) for i in space.numeric.values()]
    feats += [np.arange(start, start + len(cats)) for start, cats in space.categorical.values()]
    return sorted(feats, key=lambda f: f[0])


def changes(problem: Problem, released: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per row: features changed (a coordinate moved by more than 1% of its range: 0.02 of the
    scaled units; a category block counts once) and the L1 distance in scaled units."""
    diff = (released - problem.x).abs().cpu().numpy()
    feats = features(problem.space, diff.shape[1])
    moved = np.stack([diff[:, f].max(1) > 0.02 for f in feats], 1)
    return moved.sum(1), diff.sum(1)


def positive_int(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ConfigError(f"{name} must be a positive integer, got {v!r}")
    return v


@dataclass
class Found:
    """Per row: the best accepted candidate (the input itself where none was), whether one was
    found, and the path of candidates every ``record_every`` steps ``[t, n, dim]``."""

    best: torch.Tensor
    found: torch.Tensor
    path: np.ndarray


def descend(problem: Problem, z0: torch.Tensor, loss: Callable, judge: Judge, *, steps: int, lr: float,
            record_every: int) -> Found:
    """Adam on ``loss(candidate, z)`` (per row), keeping per row the accepted candidate of lowest rank."""
    rows = torch.arange(problem.n, device=z0.device)
    z = z0.clone()
    m, v = torch.zeros_like(z), torch.zeros_like(z)
    best = problem.x.clone()
    best_rank = torch.full((problem.n,), float("inf"), device=z0.device)
    path = []
    for step in range(1, steps + 1):
        with torch.enable_grad():
            z.requires_grad_(True)
            c = problem.candidate(z)
            (g,) = torch.autograd.grad(loss(c, z).sum(), z)
        with torch.no_grad():
            hard = problem.harden(c.detach())
            ok, rank = judge(hard, rows)
            better = ok & problem.feasible(hard, rows) & (rank < best_rank)
            best[better], best_rank[better] = hard[better], rank[better]
            if step % record_every == 0:
                path.append(hard.cpu().numpy())
        z = z.detach()
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        z = z - lr * (m / (1 - 0.9 ** step)) / ((v / (1 - 0.999 ** step)).sqrt() + 1e-8)
    return Found(best, torch.isfinite(best_rank), np.stack(path) if path else np.zeros((0, problem.n, best.shape[1])))


RADII = tuple(0.1 * 1.4 ** i for i in range(14))  # 0.1 .. 8 latent standard deviations
PER_RADIUS = 48
BISECTIONS = 8


@torch.no_grad()
def shells(problem: Problem, z0: torch.Tensor, judge: Judge, *, seed: int, radii: Sequence[float] = RADII,
           per_radius: int = PER_RADIUS, bisections: int = BISECTIONS, batch: int = 4096) -> Found:
    """Black-box search: ``per_radius`` seeded latents on each sphere around ``z0``, radii growing
    until a row has an accepted candidate; then, per row, bisection between ``z0`` and the
    lowest-rank hit for the nearest accepted point on that line."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    n = problem.n
    flat0 = z0.reshape(n, -1)
    best = problem.x.clone()
    best_rank = torch.full((n,), float("inf"), device=z0.device)
    best_z = flat0.clone()
    path = []
    for r in radii:
        todo = torch.nonzero(~torch.isfinite(best_rank)).flatten()
        if len(todo) == 0:
            break
        d = torch.randn((per_radius, len(todo), flat0.shape[1]), generator=gen).to(z0)
        z = flat0[todo][None] + r * d / d.norm(dim=2, keepdim=True)
        rows = todo.repeat(per_radius)
        c, ok, rank = _judge_in_batches(problem, z.reshape(-1, flat0.shape[1]), rows, judge, batch)
        rank = torch.where(ok, rank, torch.full_like(rank, float("inf"))).reshape(per_radius, len(todo))
        low, at = rank.min(0)
        hit = torch.isfinite(low)
        pick = at * len(todo) + torch.arange(len(todo), device=z0.device)
        best[todo[hit]] = c[pick[hit]]
        best_rank[todo[hit]] = low[hit]
        best_z[todo[hit]] = z.reshape(-1, flat0.shape[1])[pick[hit]]
        path.append(best.cpu().numpy())
    found = torch.isfinite(best_rank)
    rows = torch.nonzero(found).flatten()
    lo, hi = torch.zeros(len(rows), device=z0.device), torch.ones(len(rows), device=z0.device)
    for _ in range(bisections if len(rows) else 0):
        t = (lo + hi) / 2
        z = flat0[rows] + t[:, None] * (best_z[rows] - flat0[rows])
        c, ok, rank = _judge_in_batches(problem, z, rows, judge, batch)
        take = ok & (rank < best_rank[rows])
        best[rows[take]], best_rank[rows[take]] = c[take], rank[take]
        hi, lo = torch.where(ok, t, hi), torch.where(ok, lo, t)
        path.append(best.cpu().numpy())
    return Found(best, found, np.stack(path) if path else np.zeros((0, n, best.shape[1])))


def _judge_in_batches(problem, z_flat, rows, judge, batch):
    shape = problem.run.model.noise_shape()
    cs, oks, ranks = [], [], []
    for s in range(0, len(z_flat), batch):
        z, r = z_flat[s:s + batch].reshape((-1, *shape)), rows[s:s + batch]
        c = problem.harden(problem.candidate(z, r))
        ok, rank = judge(c, r)
        cs.append(c)
        oks.append(ok & problem.feasible(c, r))
        ranks.append(rank)
    return torch.cat(cs), torch.cat(oks), torch.cat(ranks)


__all__ = ["Found", "Judge", "Problem", "changes", "descend", "features", "immutable_mask", "prepare", "shells"]
