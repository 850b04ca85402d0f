"""The diffusion reverse process as pure step functions (a leaf: torch and maths only).

Each step takes the current state and the model's noise prediction and returns a
:class:`StepOutput` (the next sample and the predicted clean sample ``x0``); the loop that
calls the denoiser lives in the diffusion model, so that per-step hooks of the
:class:`~trustgen.sampling.sampler.Sampler` (projection, guidance) see every state.

``alpha_bar`` values are signal fractions of the noise schedule (1 at t = -1, the data).

Example:
    >>> import torch
    >>> out = ddim_step(torch.zeros(2), torch.ones(2), alpha_bar=0.5, alpha_bar_prev=1.0)
    >>> out.prev_sample.tolist(), out.pred_x0.tolist()
    ([1.0, 1.0], [1.0, 1.0])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class StepOutput:
    """What one reverse (or inversion) step produced.

    ``x0_weight``: how ``prev_sample`` moves per unit change of ``pred_x0`` with the state and
    the step's noise fixed and the noise estimate kept consistent with ``x0`` (as clipping
    does), so a hook that edits ``pred_x0`` (a projection) moves ``prev_sample`` by
    ``x0_weight * (new_x0 - pred_x0)``. None when unknown (an inversion step)."""

    prev_sample: torch.Tensor
    pred_x0: torch.Tensor
    x0_weight: float | None = None


@dataclass(frozen=True)
class StepState:
    """What a per-step hook sees: step ``index`` of the reverse process, at time ``t`` going
    to ``t_prev`` (-1: the data), the state ``x_t`` (model space), the step's output and the
    labels. The hook returns the :class:`StepOutput` to continue from."""

    index: int
    t: int
    t_prev: int
    x_t: torch.Tensor
    output: StepOutput
    labels: torch.Tensor | None


def timestep_schedule(timesteps: int, steps: int) -> list[int]:
    """The ``steps`` (at most ``timesteps``) integer times visited by DDIM, high to low."""
    steps = max(1, min(steps, timesteps))
    ts = torch.linspace(timesteps - 1, 0, steps).round().long().unique_consecutive()
    return ts.tolist()


def reverse_step_count(kind: str, steps: int, timesteps: int) -> int:
    """How many denoiser steps one reverse process takes: every timestep for DDPM, the DDIM
    schedule's length otherwise (the schedules the diffusion model walks; progress counts them)."""
    return timesteps if kind == "ddpm" else len(timestep_schedule(timesteps, steps))


def classifier_free_guidance(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """``eps_u + w (eps_c - eps_u)``: w = 1 is the conditional model, w > 1 sharpens the class."""
    return eps_uncond + scale * (eps_cond - eps_uncond)


def ddim_step(eps: torch.Tensor, x: torch.Tensor, *, alpha_bar: float, alpha_bar_prev: float, eta: float = 0.0,
              noise: torch.Tensor | None = None, clip: bool = True) -> StepOutput:
    """One DDIM step from ``x`` at signal ``alpha_bar`` to ``alpha_bar_prev``.

    ``clip`` bounds the x0 estimate to [-1, 1] (better samples; the noise estimate is made
    consistent with it); ``clip=False`` keeps the step exactly invertible. ``eta > 0`` needs
    ``noise`` (standard normal, shaped like ``x``).
    """
    ab, ab_prev = alpha_bar, alpha_bar_prev
    x0 = (x - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
    if clip:
        x0 = x0.clamp(-1.0, 1.0)
        eps = (x - math.sqrt(ab) * x0) / math.sqrt(1 - ab)  # consistent with the clipped x0
    sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev))
    direction = math.sqrt(max(1 - ab_prev - sigma ** 2, 0.0))
    prev = math.sqrt(ab_prev) * x0 + direction * eps
    if sigma > 0:
        if noise is None:
            raise ValueError("a DDIM step with eta > 0 needs noise")
        prev = prev + sigma * noise
    # eps follows x0 at fixed x: d eps / d x0 = -sqrt(ab / (1 - ab))
    return StepOutput(prev, x0, math.sqrt(ab_prev) - direction * math.sqrt(ab / (1 - ab)))


def ddpm_step(eps: torch.Tensor, x: torch.Tensor, *, alpha_bar: float, alpha_bar_prev: float,
              noise: torch.Tensor | None, clip: bool = True) -> StepOutput:
    """One ancestral DDPM step: the posterior mean of q(x_{t-1} | x_t, x0) plus its noise
    (``noise`` None at the last step, t = 0). ``clip`` bounds the x0 estimate to [-1, 1]."""
    ab, ab_prev = alpha_bar, alpha_bar_prev
    beta = 1 - ab / ab_prev
    x0 = (x - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
    if clip:
        x0 = x0.clamp(-1.0, 1.0)
    weight = math.sqrt(ab_prev) * beta / (1 - ab)
    mean = weight * x0 + (math.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab)) * x
    if noise is None:
        return StepOutput(mean, x0, weight)
    var = beta * (1 - ab_prev) / (1 - ab)
    return StepOutput(mean + math.sqrt(var) * noise, x0, weight)


def ddim_inversion_step(eps: torch.Tensor, x: torch.Tensor, *, alpha_bar: float,
                        alpha_bar_next: float) -> StepOutput:
    """One step of DDIM inversion: from ``x`` at signal ``alpha_bar`` up to the noisier
    ``alpha_bar_next`` (``prev_sample`` is the noisier state)."""
    x0 = (x - math.sqrt(1 - alpha_bar) * eps) / math.sqrt(alpha_bar)
    return StepOutput(math.sqrt(alpha_bar_next) * x0 + math.sqrt(1 - alpha_bar_next) * eps, x0)
