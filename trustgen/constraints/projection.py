"""Projection onto the feasible set, in the encoder's space (every column on one scale).

:func:`to_encoded` rewrites atoms in units as atoms on encoded vectors (linear rules stay
linear: the map is affine; each is normalised so its violation is a Euclidean distance).
:func:`project` moves samples onto the hard constraints:

1. categories outside an allowed set are replaced by the most likely allowed one;
2. implications whose condition holds add their ``then`` part for those rows;
3. the linear rules and bounds (the schema's own, and the constraints') are met by Dykstra's
   algorithm: the Euclidean projection onto an intersection of convex sets, so the sample
   moves as little as it can (inequalities and bounds aimed a float tolerance inside);
4. user functions and classifiers (hard ones) take gradient steps on their violation.

Rounds repeat while something still fails (a step can undo another's work, e.g. an
implication that switches on after the numbers move). What still fails afterwards is
reported by the caller's exact check, never returned as satisfying.

Example:
    >>> from trustgen.constraints.atoms import LinearAtom
    >>> a = [LinearAtom("x0 + x1 == 0", True, np.array([1.0, 1.0]), 0.0, "==")]
    >>> project(a, torch.tensor([[0.5, 0.5]], dtype=torch.float64), None, dim=2).tolist()
    [[0.0, 0.0]]
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from trustgen.constraints.atoms import (
    Atom, BoxAtom, CategoryAtom, ImpliesAtom, LabelAtom, LearnedAtom, LinearAtom, all_hold,
)
from trustgen.constraints.space import Space

ITERATIONS = 1000   # Dykstra sweeps at most (it stops once feasible and no longer moving)
LEARNED_STEPS = 200  # gradient steps for user functions and classifiers
ROUNDS = 4
MARGIN = 1e-4  # how far inside a learned rule's boundary the gradient steps aim


def to_encoded(atoms: list[Atom], space: Space, *, schema_box: bool = True) -> list[Atom]:
    """The same rules on encoded vectors ``x`` (``u = offset + scale * x``), linear ones
    normalised (``|a| = 1``). With ``schema_box``, the schema's own bounds are added as a box
    (numbers in [-1, 1]: what decoding would clip to)."""
    off, scl = space.offset, space.scale
    out = []
    for atom in atoms:
        if isinstance(atom, LinearAtom):
            a, b = atom.a * scl, atom.b - float(atom.a @ off)
            norm = float(np.linalg.norm(a))
            out.append(LinearAtom(atom.name, atom.hard, a / norm, b / norm, atom.op, atom.tol / norm))
        elif isinstance(atom, BoxAtom):
            c = atom.coords
            ints = space.integer[c]
            if ints.any():  # whole numbers: the bounds a whole number can meet (rounding keeps it inside)
                atom = copy.copy(atom)
                atom.low = np.where(ints, np.ceil(atom.low), atom.low)
                atom.high = np.where(ints, np.floor(atom.high), atom.high)
            # aim inside by the tolerance (a float32 output cannot sit on a bound), never past the middle
            tol = np.minimum(atom.tol, np.nan_to_num((atom.high - atom.low) / 4, posinf=atom.tol)) / scl[c]
            out.append(BoxAtom(atom.name, atom.hard, c, (atom.low - off[c]) / scl[c] + tol,
                               (atom.high - off[c]) / scl[c] - tol, atom.tol))
        elif isinstance(atom, ImpliesAtom):
            out.append(ImpliesAtom(atom.name, atom.hard, to_encoded(atom.when, space, schema_box=False),
                                   to_encoded(atom.then, space, schema_box=False)))
        elif isinstance(atom, LearnedAtom):
            new = copy.copy(atom)
            score = atom.score
            new.score = lambda x, score=score, shape=atom.shape: score(
                _shaped(space.to_units(x), shape))
            new.shape = ()
            out.append(new)
        else:  # categories and labels: the same in both spaces
            out.append(atom)
    if schema_box and not space.image and space.numeric:
        c = np.array(sorted(space.numeric.values()))
        out.append(BoxAtom("schema bounds", True, c, -np.ones(len(c)), np.ones(len(c)), 0.0))
    elif schema_box and space.image:
        c = np.arange(space.dim)
        out.append(BoxAtom("schema bounds", True, c, -np.ones(len(c)), np.ones(len(c)), 0.0))
    return out


def _shaped(u, shape):
    return u.reshape((u.shape[0],) + shape) if shape else u


def violation(atoms: list[Atom], x: torch.Tensor, y) -> torch.Tensor:
    """Sum of the atoms' violations per sample (differentiable; 0 where all hold)."""
    v = x.new_zeros(x.shape[0])
    for a in atoms:
        if not isinstance(a, LabelAtom):  # labels are drawn, not moved
            v = v + a.violation(x, y)
    return v


def project(atoms: list[Atom], x: torch.Tensor, y, *, dim: int | None = None, rounds: int = ROUNDS,
            learned_steps: int = LEARNED_STEPS) -> torch.Tensor:
    """``x`` (encoded, ``[n, ...]``) moved onto the hard ``atoms`` (encoded, from
    :func:`to_encoded`); float64 inside, returned in ``x``'s dtype and shape."""
    shape, dtype = x.shape, x.dtype
    x = x.detach().reshape(shape[0], -1).to(torch.float64).clone()
    hard = [a for a in atoms if a.hard]
    for _ in range(rounds):
        if bool(all_hold(hard, x, y).all()):
            break
        rows = [(a, None) for a in hard if not isinstance(a, ImpliesAtom)]
        for imp in (a for a in hard if isinstance(a, ImpliesAtom)):
            on = imp.active(x, y)
            rows += [(t, on) for t in imp.then]
        for atom, mask in rows:  # 1. categories
            if isinstance(atom, CategoryAtom):
                x = _allowed_category(atom, x, mask)
        x = _dykstra([(a, m) for a, m in rows if isinstance(a, (LinearAtom, BoxAtom))], x)  # 3.
        learned = [(a, m) for a, m in rows if isinstance(a, LearnedAtom)]
        if learned:  # 4.
            x = _descend(learned, x, learned_steps)
    failing = ~all_hold(hard, x, y)
    if bool(failing.any()):  # a set with no room inside (rules meeting at a point): aim at the boundary itself
        sets = [(a, None) for a in hard if isinstance(a, (LinearAtom, BoxAtom))]
        x[failing] = _dykstra(sets, x[failing], margin=False)
    return x.to(dtype).reshape(shape)


def _allowed_category(atom: CategoryAtom, x, mask):
    block = x[:, atom.start:atom.start + atom.size]
    allowed = atom.mask(x.device)
    best = block.masked_fill(~allowed, -torch.inf).argmax(1)
    fixed = torch.nn.functional.one_hot(best, atom.size).to(x)
    bad = ~allowed[block.argmax(1)]
    if mask is not None:
        bad &= mask
    x = x.clone()
    x[bad, atom.start:atom.start + atom.size] = fixed[bad]
    return x


def _dykstra(sets, x, margin: bool = True):
    """Dykstra's alternating projections onto the half-spaces, hyperplanes and boxes in
    ``sets`` (each with a row mask or None), from ``x``; ``margin``: inequalities aimed their
    tolerance inside."""
    if not sets or not len(x):
        return x
    n, d = x.shape
    lo = torch.full((n, d), -torch.inf, dtype=x.dtype)
    hi = torch.full((n, d), torch.inf, dtype=x.dtype)
    planes = []
    for atom, mask in sets:
        m = torch.ones(n, dtype=torch.bool) if mask is None else mask.cpu()
        if isinstance(atom, BoxAtom):  # boxes intersect coordinate-wise: one set
            c = torch.as_tensor(atom.coords)
            lo_a = torch.as_tensor(atom.low, dtype=x.dtype).expand(n, -1)
            hi_a = torch.as_tensor(atom.high, dtype=x.dtype).expand(n, -1)
            lo[:, c] = torch.where(m[:, None], torch.maximum(lo[:, c], lo_a), lo[:, c])
            hi[:, c] = torch.where(m[:, None], torch.minimum(hi[:, c], hi_a), hi[:, c])
        else:
            # aim inside by the tolerance, so rounding cannot push the sample out
            b = atom.b if atom.op == "==" or not margin else atom.b - atom.tol
            planes.append((torch.as_tensor(atom.a, dtype=x.dtype), b, atom.op == "==", m[:, None].to(x.dtype),
                           atom.tol))
    lo, hi = lo.to(x.device), hi.to(x.device)
    if not planes:
        return torch.minimum(torch.maximum(x, lo), hi)
    planes = [(a.to(x.device), b, eq, m.to(x.device), tol) for a, b, eq, m, tol in planes]
    incr = [torch.zeros_like(x) for _ in range(len(planes) + 1)]
    previous = None
    for it in range(ITERATIONS):
        z = x + incr[0]
        y = torch.minimum(torch.maximum(z, lo), hi)
        incr[0], x = z - y, y
        for k, (a, b, eq, m, _) in enumerate(planes, 1):
            z = x + incr[k]
            r = z @ a - b
            step = r if eq else torch.relu(r)
            y = z - m * step[:, None] * a[None, :]  # |a| = 1
            incr[k], x = z - y, y
        if it % 10 == 9:  # converged: feasible, and no longer moving (not merely feasible: the nearest point)
            if _within(planes, lo, hi, x) and (previous is not None and float((x - previous).abs().max()) < 1e-12):
                break
            previous = x.clone()
    return x


def _within(planes, lo, hi, x) -> bool:
    if bool(((x < lo) | (x > hi)).any()):
        return False
    for a, b, eq, m, tol in planes:  # b is already inside by tol for inequalities
        r = x @ a - b
        r = r.abs() if eq else r
        if bool(((r > tol / 10) & (m[:, 0] > 0)).any()):
            return False
    return True


def descend(loss, x: torch.Tensor, steps: int, lr: float) -> torch.Tensor:
    """Adam steps on ``x`` for ``loss(x) -> [n]`` (per-sample losses, summed), stopping once
    every loss is 0. Written out, because ``torch.optim`` imports the compiler stack
    (1.4 s on first use here, more than a whole constrained draw)."""
    x = x.detach().clone()
    m, v = torch.zeros_like(x), torch.zeros_like(x)
    b1, b2 = 0.9, 0.999
    for t in range(1, steps + 1):
        with torch.enable_grad():
            x.requires_grad_(True)
            per = loss(x)
            if not bool((per > 0).any()):
                break
            (g,) = torch.autograd.grad(per.sum(), x)
        x = x.detach()
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        x = x - lr * (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + 1e-8)
    return x.detach()


def _descend(learned, x, steps):
    """Gradient steps on the violating rows' learned violations (in encoded space)."""
    def loss(x):
        v = x.new_zeros(x.shape[0])
        for atom, mask in learned:
            term = torch.relu(atom.scores(x) + MARGIN)  # a little inside, so the check passes
            v = v + (term if mask is None else term * mask.to(term))
        return v

    return descend(loss, x, steps, 0.02)
