"""Typed hooks: where later stages act on sampling, and what they must return.

=========  =====================================  =========================================
hook       called as                              returns
=========  =====================================  =========================================
noise      ``hook(z, labels, generator)``         :class:`NoiseResult` (new ``z``, key id)
step       ``hook(state: StepState)``             :class:`StepOutput` (diffusion only)
output     ``hook(x, labels)``                    :class:`OutputResult` (``x``, flags)
=========  =====================================  =========================================

What they return fills the :class:`~trustgen.sampling.sampler.SampleBatch`: a noise hook's
``key_id`` becomes ``watermark_key_id``, output hooks' ``satisfied`` flags (AND over hooks)
become ``constraints_satisfied``. A hook that cannot act must raise; the Sampler also raises
when a hook returns anything but its result type, changes a shape, or is given to a model it
cannot act on (a step hook on a VAE or GAN), so samples are never passed through silently.

Example (a noise hook that flips the sign of z and says so):

    >>> import torch
    >>> def flip(z, labels, generator):
    ...     return NoiseResult(-z, key_id="demo-key")
    >>> flip(torch.ones(2, 3), None, None).key_id
    'demo-key'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch

from trustgen.errors import ConfigError
from trustgen.sampling.schedulers import StepOutput, StepState

StepHook = Callable[[StepState], StepOutput]


@dataclass(frozen=True)
class NoiseResult:
    """What a noise hook did: the latent noise to generate from, and, for a watermark, the
    id of the key it embedded (never the key itself)."""

    z: torch.Tensor
    key_id: str | None = None


@dataclass(frozen=True)
class OutputResult:
    """What an output hook did: the (possibly projected) encoded samples and, per sample,
    whether it satisfies the hook's rules (bool ``[n]``)."""

    x: torch.Tensor
    satisfied: torch.Tensor


class NoiseHook(Protocol):
    def __call__(self, z: torch.Tensor, labels: torch.Tensor | None,
                 generator: torch.Generator) -> NoiseResult: ...


class OutputHook(Protocol):
    def __call__(self, x: torch.Tensor, labels: torch.Tensor | None) -> OutputResult: ...


def _name(hook) -> str:
    return getattr(hook, "__name__", type(hook).__name__)


def apply_noise_hooks(hooks, z: torch.Tensor, labels, generator) -> tuple[torch.Tensor, str | None]:
    """Run noise hooks in order; returns the final ``z`` and the (single) key id."""
    key_id = None
    for hook in hooks:
        res = hook(z, labels, generator)
        if not isinstance(res, NoiseResult):
            raise ConfigError(f"noise hook {_name(hook)} returned {type(res).__name__}, not a NoiseResult")
        if res.z.shape != z.shape:
            raise ConfigError(f"noise hook {_name(hook)} changed the noise shape {tuple(z.shape)} -> "
                              f"{tuple(res.z.shape)}")
        if res.key_id is not None:
            if key_id is not None and key_id != res.key_id:
                raise ConfigError(f"two noise hooks embedded different keys ({key_id!r}, {res.key_id!r}): "
                                  "one watermark per batch")
            key_id = res.key_id
        z = res.z
    return z, key_id


def apply_output_hooks(hooks, x: torch.Tensor, labels) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run output hooks in order; returns the final ``x`` and the AND of their flags (None
    without hooks)."""
    ok = None
    for hook in hooks:
        res = hook(x, labels)
        if not isinstance(res, OutputResult):
            raise ConfigError(f"output hook {_name(hook)} returned {type(res).__name__}, not an OutputResult")
        if res.x.shape != x.shape:
            raise ConfigError(f"output hook {_name(hook)} changed the sample shape {tuple(x.shape)} -> "
                              f"{tuple(res.x.shape)}")
        flags = torch.as_tensor(res.satisfied)
        if flags.dtype != torch.bool or flags.shape != (x.shape[0],):
            raise ConfigError(f"output hook {_name(hook)} must flag each of the {x.shape[0]} samples with a "
                              f"bool, got {flags.dtype} {tuple(flags.shape)}")
        flags = flags.to(x.device)
        ok = flags if ok is None else ok & flags
        x = res.x
    return x, ok


def checked_step_hook(hook: StepHook) -> StepHook:
    """``hook`` with its result type checked at every step."""

    def run(state: StepState) -> StepOutput:
        out = hook(state)
        if not isinstance(out, StepOutput):
            raise ConfigError(f"step hook {_name(hook)} returned {type(out).__name__}, not a StepOutput")
        if out.prev_sample.shape != state.x_t.shape:
            raise ConfigError(f"step hook {_name(hook)} changed the state shape")
        return out

    run.__name__ = _name(hook)
    return run
