"""The hooks constrained sampling plugs into a :class:`~trustgen.sampling.sampler.Sampler`.

* :class:`ConstraintHook` (output hook): checks each sample on its decoded values and, for
  projection, projects the output.
* :class:`LatentSearch` (noise hook, VAE and GAN): gradient steps on ``z`` through the soft
  decode until the constraints hold.
* :class:`StepConstraint` (step hook, diffusion): projects (or guides) every step's estimate.
* :class:`EllipticalSlice` (noise hook): from a ``z`` whose sample satisfies the hard
  constraints, elliptical slice sampling (Murray, Adams & MacKay 2010) with the constraints as
  an indicator likelihood: a Markov chain that keeps ``z``'s N(0, I) prior and never leaves
  the feasible set, so its samples tend to the model's own distribution conditioned on the
  constraints (what rejection draws exactly). It needs a decode that is a function of ``z``
  (GAN; VAE images, or tables with a deterministic decode; DDIM with eta 0).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from trustgen.constraints.atoms import LearnedAtom, all_hold
from trustgen.constraints.projection import descend, project, violation
from trustgen.constraints.space import Space
from trustgen.errors import ConfigError
from trustgen.models.base import randn, rand
from trustgen.sampling.hooks import NoiseResult, OutputResult
from trustgen.sampling.schedulers import StepOutput, StepState

SEARCH_STEPS = 100
GUIDE_STEPS = 5
MCMC_STEPS = 20
MAX_SHRINKS = 30  # an elliptical slice step that still fails after this many brackets keeps its z


class Tally:
    """Counts of raw satisfaction, filled by :class:`ConstraintHook`."""

    def __init__(self, names):
        self.names = names
        self.seen = self.raw = self.decoded = 0
        self.each = np.zeros(len(names), dtype=np.int64)


class ConstraintHook:
    """Output hook: checks (and with ``project``, projects) encoded samples.

    Records in ``tally`` how the raw output fared before any change; flags a sample as
    satisfied when its decoded values (clipped, rounded, argmax) satisfy every hard rule."""

    def __init__(self, space: Space, atoms, encoded_atoms, tally: Tally, *, project_output: bool) -> None:
        self.space, self.atoms, self.encoded, self.tally = space, atoms, encoded_atoms, tally
        self.project_output = project_output
        self.__name__ = "ConstraintHook"

    def __call__(self, x: torch.Tensor, labels) -> OutputResult:
        u = self.space.to_units(x.detach().double())
        hard = [a for a in self.atoms if a.hard]
        t = self.tally
        t.seen += len(x)
        t.raw += int(all_hold(hard, u, labels).sum())
        t.decoded += int(all_hold(hard, decoded_units(self.space, u), labels).sum())
        for i, a in enumerate(hard):
            t.each[i] += int(a.holds(u, labels).sum())
        if self.project_output:
            x = project(self.encoded, x, labels).to(x.dtype)
            u = self.space.to_units(x.double())
        return OutputResult(x, all_hold(hard, decoded_units(self.space, u), labels))


def decoded_units(space: Space, u: torch.Tensor) -> torch.Tensor:
    """Units as decoding leaves them: clipped to the schema, integers rounded, categories one-hot."""
    lo = torch.as_tensor(space.low, dtype=u.dtype, device=u.device)
    hi = torch.as_tensor(space.high, dtype=u.dtype, device=u.device)
    v = torch.minimum(torch.maximum(u, lo), hi)
    ints = torch.as_tensor(space.integer, device=u.device)
    v = torch.where(ints, v.round(), v)
    for start, cats in space.categorical.values():
        k = len(cats)
        v[:, start:start + k] = torch.nn.functional.one_hot(v[:, start:start + k].argmax(1), k).to(v)
    return v


class LatentSearch:
    """Noise hook (VAE, GAN): gradient steps on ``z`` that lower the constraints' violation of
    the soft decode, with a pull back towards the drawn ``z`` (so samples stay typical)."""

    def __init__(self, model, encoded_atoms, *, steps: int = SEARCH_STEPS, lr: float = 0.05,
                 pull: float = 1e-3) -> None:
        self.model, self.atoms, self.steps, self.lr, self.pull = model, encoded_atoms, steps, lr, pull
        self.__name__ = "LatentSearch"

    def _violation(self, w, labels):
        x = self.model.generate(w, labels, hard=False).reshape(len(w), -1)
        return violation(self.atoms, x.double(), labels)

    def __call__(self, z, labels, generator) -> NoiseResult:
        z0 = z.detach()
        rows = torch.nonzero(self._violation(z0, labels) > 0).ravel()  # only those that need it move
        if not len(rows):
            return NoiseResult(z0)
        y = None if labels is None else labels[rows]
        start = z0[rows]

        def loss(w):
            v = self._violation(w, y)
            return torch.where(v > 0, v + 0.5 * self.pull * (w - start).pow(2).sum(1), v)

        out = z0.clone()
        out[rows] = descend(loss, start, self.steps, self.lr).to(z0.dtype)
        return NoiseResult(out)


class StepConstraint:
    """Step hook (diffusion): each step's clean-sample estimate projected onto the hard
    constraints (``mode="project"``) and moved down the soft ones' gradient; ``"guide"``:
    gradient steps only. The step's next state moves with its estimate (``x0_weight``)."""

    def __init__(self, model, encoded_atoms, *, mode: str, lr: float = 0.1, steps: int = GUIDE_STEPS) -> None:
        self.model, self.atoms, self.mode, self.lr, self.steps = model, encoded_atoms, mode, lr, steps
        self.only: torch.Tensor | None = None  # bool [n]: the rows to act on (None: all), set per batch
        self.__name__ = f"StepConstraint({mode})"

    def __call__(self, state: StepState) -> StepOutput:
        out = state.output
        if out.x0_weight is None:
            raise ConfigError("a step hook before the constraints dropped x0_weight from its StepOutput")
        if self.only is None:
            return self._act(state)
        rows = torch.nonzero(self.only.to(out.pred_x0.device)).ravel()
        if not len(rows):
            return out
        sub = StepState(state.index, state.t, state.t_prev, state.x_t[rows],
                        StepOutput(out.prev_sample[rows], out.pred_x0[rows], out.x0_weight),
                        None if state.labels is None else state.labels[rows])
        done = self._act(sub)
        prev, x0 = out.prev_sample.clone(), out.pred_x0.clone()
        prev[rows], x0[rows] = done.prev_sample, done.pred_x0
        return StepOutput(prev, x0, out.x0_weight)

    def _act(self, state: StepState) -> StepOutput:
        out = state.output
        x0 = out.pred_x0
        e = self.model.from_model_space(x0, hard=False).reshape(len(x0), -1).double()
        guided = [a for a in self.atoms if not a.hard or isinstance(a, LearnedAtom) or self.mode == "guide"]
        if guided:
            e = e.detach().requires_grad_(True)
            with torch.enable_grad():
                for _ in range(self.steps):
                    v = violation(guided, e, state.labels)
                    if not bool((v > 0).any()):
                        break
                    (g,) = torch.autograd.grad(v.sum(), e)
                    # normalised steps of length lr per sample: a saturated classifier's gradient is tiny
                    # far from its boundary, and a plain step would not move at all
                    norm = g.flatten(1).norm(dim=1).clamp(min=torch.finfo(g.dtype).tiny)
                    norm = norm.view((-1,) + (1,) * (g.dim() - 1))
                    step = torch.where((v > 0).view_as(norm), g / norm, torch.zeros_like(g))
                    e = (e - self.lr * step).detach().requires_grad_(True)
            e = e.detach()
        if self.mode == "project":
            e = project(self.atoms, e, state.labels, rounds=1, learned_steps=0)
        new = self.model.to_model_space(e.to(x0.dtype).reshape(x0.shape))
        return StepOutput(out.prev_sample + out.x0_weight * (new - x0), new, out.x0_weight)


def deterministic_decode(run, config) -> bool:
    """Whether ``run``'s samples are a function of the latent noise under ``config``."""
    if run.family == "gan":
        return True
    if run.family == "vae":
        return run.schema.kind == "image" or bool(config.deterministic)
    return config.kind == "ddim" and config.eta == 0


class EllipticalSlice:
    """Noise hook: ``steps`` elliptical slice steps per sample on ``z`` ~ N(0, I) restricted to
    the latents whose decoded sample satisfies every hard atom.

    A sample whose incoming ``z`` is infeasible starts, for diffusion (``step_hook`` given), from
    the step hook's output, inverted (:meth:`start`); failing that, from the feasible latent of
    another sample of the batch, which its chain then leaves. Only when no sample of the batch
    is feasible do they keep their ``z`` (diffusion: the generation that follows applies the
    step hook to them alone; elsewhere the output projection or a redraw takes care of them)."""

    def __init__(self, model, space: Space, hard_atoms, config, *, steps: int = MCMC_STEPS,
                 step_hook: StepConstraint | None = None) -> None:
        self.model, self.space, self.atoms, self.config = model, space, hard_atoms, config
        self.steps, self.step_hook = steps, step_hook
        self.__name__ = "EllipticalSlice"

    def start(self, z, labels):
        """Diffusion: the reverse process with the step hook, then DDIM inversion of its output."""
        self.step_hook.only = None
        x = self.model.generate(z, labels, generator=None, sampler=self.config, step_hooks=(self.step_hook,))
        return self.model.invert(x, labels, sampler=self.config)

    def feasible(self, z, labels) -> torch.Tensor:
        x = self.model.generate(z, labels, hard=True, generator=None, sampler=self.config)
        u = self.space.to_units(x.double())
        return all_hold(self.atoms, decoded_units(self.space, u), labels)

    def __call__(self, z, labels, generator) -> NoiseResult:
        z = z.detach().clone()
        ok = self.feasible(z, labels)
        if self.step_hook is not None and not bool(ok.all()):
            bad = torch.nonzero(~ok).ravel()
            y = None if labels is None else labels[bad]
            cand = self.start(z[bad], y)
            now = self.feasible(cand, y)
            z[bad[now]] = cand[now]
            ok[bad[now]] = True
        if bool(ok.any()) and not bool(ok.all()):
            # the rest start from a feasible latent of another sample with the same label, checked under
            # their own: the chain's steps take them away from it (its stationary law does not depend on
            # where a chain starts)
            bad = torch.nonzero(~ok).ravel()
            pick = torch.full_like(bad, -1)
            for i, row in enumerate(bad.tolist()):
                same = ok if labels is None else ok & (labels == labels[row])
                good = torch.nonzero(same).ravel()
                if len(good):
                    pick[i] = good[int(torch.randint(len(good), (1,), generator=generator))]
            has = pick >= 0
            cand = z[pick[has]]
            y = None if labels is None else labels[bad[has]]
            now = self.feasible(cand, y) if len(cand) else torch.zeros(0, dtype=torch.bool, device=z.device)
            rows_ok = bad[has][now]
            z[rows_ok] = cand[now]
            ok[rows_ok] = True
        if self.step_hook is not None:  # the generation that follows steers only the rows the chain could not take
            self.step_hook.only = ~ok
        rows = torch.nonzero(ok).ravel()
        if not len(rows):
            return NoiseResult(z)
        cur, y = z[rows], None if labels is None else labels[rows]
        for _ in range(self.steps):
            nu = randn(cur.shape, generator, cur)
            theta = rand((len(cur),), generator, cur) * (2 * math.pi)
            lo, hi = theta - 2 * math.pi, theta.clone()
            todo = torch.arange(len(cur), device=cur.device)
            nxt = cur.clone()
            for _ in range(MAX_SHRINKS):
                shape = (-1,) + (1,) * (cur.dim() - 1)
                prop = cur[todo] * theta[todo].cos().view(shape) + nu[todo] * theta[todo].sin().view(shape)
                acc = self.feasible(prop, None if y is None else y[todo])
                nxt[todo[acc]] = prop[acc]
                todo, th = todo[~acc], theta[todo[~acc]]
                if not len(todo):
                    break
                neg = th < 0
                lo[todo] = torch.where(neg, th, lo[todo])
                hi[todo] = torch.where(neg, hi[todo], th)
                theta[todo] = lo[todo] + rand((len(todo),), generator, cur) * (hi[todo] - lo[todo])
            cur = nxt
        z[rows] = cur
        return NoiseResult(z)

