"""Sampling as a stage: the Sampler, its settings, typed hooks, reverse-process steps, writers.

* :mod:`~trustgen.sampling.config`: :class:`SamplerConfig` (a leaf, read by the models).
* :mod:`~trustgen.sampling.schedulers`: DDPM / DDIM / inversion steps and classifier-free
  guidance as pure functions (a leaf, used by the diffusion model).
* :mod:`~trustgen.sampling.hooks`: the typed hook protocols and their results.
* :mod:`~trustgen.sampling.sampler`: :class:`Sampler` and :class:`SampleBatch`.
* :mod:`~trustgen.sampling.writers`: samples to .csv / .npz / .png.

Names are imported lazily so that the models can import the two leaves without importing
the Sampler (which imports the models).
"""

from __future__ import annotations

from trustgen.lazy import lazy_exports

_EXPORTS = {
    "SamplerConfig": "config",
    "StepOutput": "schedulers",
    "NoiseHook": "hooks", "NoiseResult": "hooks", "OutputHook": "hooks", "OutputResult": "hooks",
    "StepHook": "hooks", "StepState": "hooks",
    "Sampler": "sampler", "SampleBatch": "sampler",
    "write_samples": "writers",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, globals(), _EXPORTS)
