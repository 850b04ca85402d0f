"""How to sample, chosen at sampling time (not stored as a model option).

A leaf module (imports nothing of trustgen but errors): the diffusion model reads it to run
its reverse process, the :class:`~trustgen.sampling.sampler.Sampler` builds it.

Example:
    >>> SamplerConfig(kind="ddim", steps=20).resolved("image").guidance
    2.0
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Literal

from trustgen.errors import ConfigError
from trustgen.limits import MAX_SAMPLER_STEPS

SamplerKind = Literal["ddim", "ddpm"]

# Classifier-free guidance that worked best on the built-in data (measured with the
# foundation's benchmarks): images gain from w = 2, tables do not.
DEFAULT_GUIDANCE = {"image": 2.0, "tabular": 1.0}


@dataclass(frozen=True)
class SamplerConfig:
    """Settings of one sampling call.

    Attributes:
        kind: ``"ddim"`` (deterministic given the noise when ``eta == 0``) or ``"ddpm"``
            (ancestral, over every timestep). Diffusion only.
        steps: DDIM steps (more than the model's timesteps visit each timestep once). DDIM only.
        eta: DDIM stochasticity (0: deterministic). DDIM only.
        guidance: classifier-free guidance scale ``w`` (1: plain conditional); None picks
            the default for the data kind (2 for images, 1 for tables). Diffusion only.
        deterministic: decode without any randomness after the latent noise: no decoder
            noise (the VAE decodes means and modes), DDIM with ``eta = 0``. What watermark
            detection and inversion rely on.
        clip: bound each x0 estimate of the reverse process to the data range [-1, 1]
            (better samples); ``False`` keeps DDIM steps exactly invertible. Diffusion only.
    """

    kind: SamplerKind = "ddim"
    steps: int = 50
    eta: float = 0.0
    guidance: float | None = None
    deterministic: bool = False
    clip: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("ddim", "ddpm"):
            raise ConfigError(f"unknown sampler {self.kind!r} (known: ddim, ddpm)")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or not 1 <= self.steps <= MAX_SAMPLER_STEPS:
            raise ConfigError(f"sampler steps must be an integer from 1 to {MAX_SAMPLER_STEPS:,}, got {self.steps!r}")
        if not (isinstance(self.eta, (int, float)) and 0.0 <= self.eta <= 1.0):
            raise ConfigError(f"eta must be in [0, 1], got {self.eta!r}")
        if self.guidance is not None and not (isinstance(self.guidance, (int, float))
                                              and math.isfinite(self.guidance) and self.guidance >= 0):
            raise ConfigError(f"guidance must be a finite number >= 0, got {self.guidance!r}")
        if self.kind == "ddpm" and (self.steps != 50 or self.eta != 0):
            raise ConfigError("DDPM visits every timestep: steps and eta apply to the DDIM sampler "
                              f"(got steps={self.steps}, eta={self.eta}); choose kind='ddim'")
        if self.deterministic and (self.kind != "ddim" or self.eta != 0):
            raise ConfigError("a deterministic decode needs the DDIM sampler with eta = 0 "
                              f"(got kind={self.kind!r}, eta={self.eta})")

    def resolved(self, data_kind: str) -> "SamplerConfig":
        """This config with ``guidance`` filled in for ``data_kind`` (``"tabular"``/``"image"``)."""
        if self.guidance is not None:
            return self
        return replace(self, guidance=DEFAULT_GUIDANCE[data_kind])

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SamplerConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown sampler settings {unknown} (known: {sorted(names)})")
        return cls(**d)

