"""Generative model families: one per file, all following :mod:`trustgen.models.base`."""

from __future__ import annotations

from trustgen.errors import ConfigError
from trustgen.models.base import GenerativeModel, make_config
from trustgen.models.diffusion import Diffusion, DiffusionConfig
from trustgen.models.gan import GAN, GANConfig
from trustgen.models.nets import DataSpec
from trustgen.models.vae import VAE, VAEConfig

FAMILIES: dict[str, type[GenerativeModel]] = {"vae": VAE, "gan": GAN, "diffusion": Diffusion}


def build_model(family: str, spec: DataSpec, options: dict | None = None) -> GenerativeModel:
    """Build a model of ``family`` for data described by ``spec``.

    Args:
        family: ``"vae"``, ``"gan"`` or ``"diffusion"``.
        options: overrides of the family's config fields (e.g. ``{"latent_dim": 32}``).
    """
    if family not in FAMILIES:
        raise ConfigError(f"unknown model family {family!r} (known: {', '.join(FAMILIES)})")
    cls = FAMILIES[family]
    return cls(spec, make_config(cls.Config, spec, options))


__all__ = ["FAMILIES", "build_model", "DataSpec", "GenerativeModel", "VAE", "VAEConfig", "GAN",
           "GANConfig", "Diffusion", "DiffusionConfig"]
