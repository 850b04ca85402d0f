"""Generative model families: one per file, all following :mod:`trustgen.models.base`."""

from __future__ import annotations

from trustgen.errors import ConfigError
from trustgen.models.backbones import build_backbone, known_backbones, register_backbone
from trustgen.models.base import GenerativeModel, make_config
from trustgen.models.diffusion import Diffusion, DiffusionConfig
from trustgen.models.gan import GAN, GANConfig
from trustgen.models.nets import DataSpec
from trustgen.models.vae import VAE, VAEConfig

FAMILIES: dict[str, type[GenerativeModel]] = {"vae": VAE, "gan": GAN, "diffusion": Diffusion}


def family_class(family: str) -> type[GenerativeModel]:
    """The class of ``family``; a clear error listing the known families otherwise."""
    if family not in FAMILIES:
        raise ConfigError(f"unknown model family {family!r} (known: {', '.join(FAMILIES)})")
    return FAMILIES[family]


def build_model(family: str, spec: DataSpec, options: dict | None = None, *,
                private: bool = False) -> GenerativeModel:
    """Build a model of ``family`` for data described by ``spec``.

    Args:
        family: ``"vae"``, ``"gan"`` or ``"diffusion"``.
        options: overrides of the family's config fields (e.g. ``{"latent_dim": 32}``).
        private: the model will be trained with DP-SGD (the family's ``private_defaults``
            apply below ``options``).
    """
    cls = family_class(family)
    return cls(spec, make_config(cls.Config, spec, options, private=private))


def split_sampling_options(family: str, options: dict | None) -> tuple[dict, dict]:
    """Split ``options`` into the family's model options and sampler defaults (SamplerConfig
    fields), for options that were model options before sampling became a stage."""
    legacy = getattr(family_class(family).Config, "sampling_options", {})
    options = dict(options or {})
    sampling = {legacy[k]: options.pop(k) for k in list(options) if k in legacy}
    if sampling.get("kind") == "ddpm":
        sampling.pop("steps", None)  # DDPM visits every timestep: a step count never applied to it
    return options, sampling


__all__ = ["split_sampling_options", "FAMILIES", "build_model", "build_backbone", "known_backbones", "register_backbone", "DataSpec", "GenerativeModel", "VAE", "VAEConfig", "GAN",
           "GANConfig", "Diffusion", "DiffusionConfig"]
