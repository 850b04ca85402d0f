"""Backbones chosen by name: each family builds its networks through this registry, so a new
variant (a Bayesian decoder, another denoiser) is added by registering a builder, without
editing the families.

Roles and what a backbone of each role computes:

=====================  ============================================  ======================
role                   forward                                        built-in names
=====================  ============================================  ======================
``vae.encoder``        ``(x, y1h) -> [B, 2 * latent_dim]``            ``mlp``, ``conv``
``vae.decoder``        ``([z, y1h]) -> decoder output``               ``mlp``, ``conv``
``gan.discriminator``  ``(x, y1h) -> [B, 1]`` (``[B, 2, 1]`` tables)  ``mlp``, ``conv``
``gan.generator``      ``([z, y1h]) -> pre-activation sample``        ``mlp``, ``conv``
``diffusion.denoiser`` ``(x_t, t, y1h) -> predicted noise``           ``mlp``, ``unet``
``label_head``         ``(x flattened) -> [B, n_classes]`` logits     ``mlp``, ``bayes-mlp``
=====================  ============================================  ======================

``bayes-mlp`` decoders have a mean-field output layer (:mod:`trustgen.models.bayes`), on
tables and images alike: the spread of their outputs across posterior draws is the
per-sample uncertainty of :mod:`trustgen.uncertainty`.

A builder is called as ``builder(spec, config, **sizes)`` and returns an ``nn.Module`` made of
layers Opacus can clip per example. Example:

    >>> from trustgen.models.nets import DataSpec
    >>> sorted(known_backbones("vae.decoder"))
    ['conv', 'mlp']
    >>> build_backbone("vae.decoder", "nope", DataSpec("tabular", 2, 0), None)
    Traceback (most recent call last):
    ...
    trustgen.models.backbones.UnknownBackboneError: unknown vae.decoder backbone 'nope' (known: conv, mlp)
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from trustgen.errors import ConfigError
from trustgen.models.bayes import bayes_mlp
from trustgen.models.denoisers import MLPDenoiser, UNetDenoiser
from trustgen.models.nets import ConditionalMLP, ConvDecoder, ConvEncoder, DataSpec, mlp

Builder = Callable[..., nn.Module]
_REGISTRY: dict[str, dict[str, tuple[Builder, tuple[str, ...]]]] = {}


class UnknownBackboneError(ConfigError, KeyError):
    """A backbone name that is not registered for its role (or not for this kind of data)."""

    __str__ = Exception.__str__  # KeyError would quote the message


def register_backbone(role: str, name: str, kinds: tuple[str, ...] = ("tabular", "image")):
    """Decorator: register ``builder`` as backbone ``name`` of ``role`` for data ``kinds``."""

    def wrap(builder: Builder) -> Builder:
        entries = _REGISTRY.setdefault(role, {})
        if name in entries:
            raise ConfigError(f"a {role} backbone named {name!r} is already registered")
        entries[name] = (builder, tuple(kinds))
        return builder

    return wrap


def known_backbones(role: str) -> dict[str, tuple[str, ...]]:
    """Registered names of ``role`` and the data kinds each supports."""
    return {name: kinds for name, (_, kinds) in _REGISTRY.get(role, {}).items()}


def build_backbone(role: str, name: str, spec: DataSpec, config, **sizes) -> nn.Module:
    """Build backbone ``name`` of ``role`` for ``spec``; a clear error for an unknown name."""
    entries = _REGISTRY.get(role)
    if entries is None:
        raise UnknownBackboneError(f"unknown backbone role {role!r} (known: {', '.join(sorted(_REGISTRY))})")
    if name not in entries:
        raise UnknownBackboneError(f"unknown {role} backbone {name!r} (known: {', '.join(sorted(entries))})")
    builder, kinds = entries[name]
    if spec.kind not in kinds:
        fits = sorted(n for n, (_, k) in entries.items() if spec.kind in k)
        raise UnknownBackboneError(f"the {role} backbone {name!r} does not work on {spec.kind} data "
                                   f"(use one of: {', '.join(fits)})")
    return builder(spec, config, **sizes)


def _hidden(config) -> list[int]:
    return [config.hidden] * config.depth


# ---------------------------------------------------------------------------------- VAE
@register_backbone("vae.encoder", "mlp", kinds=("tabular",))
def _vae_mlp_encoder(spec, config, *, out: int) -> nn.Module:
    return ConditionalMLP(*mlp([spec.dim + spec.n_classes, *_hidden(config), out]))


@register_backbone("vae.encoder", "conv", kinds=("image",))
def _vae_conv_encoder(spec, config, *, out: int) -> nn.Module:
    return ConvEncoder(spec.shape, spec.n_classes, config.width, out)


@register_backbone("vae.decoder", "mlp", kinds=("tabular",))
def _vae_mlp_decoder(spec, config, *, inp: int, out: int) -> nn.Module:
    return mlp([inp, *_hidden(config), out])


@register_backbone("vae.decoder", "bayes-mlp")
def _vae_bayes_decoder(spec, config, *, inp: int, out: int) -> nn.Module:
    net = bayes_mlp([inp, *_hidden(config), out], prior_sigma=config.prior_sigma)
    if spec.kind == "image":
        net.append(nn.Unflatten(1, tuple(spec.shape)))
    return net


@register_backbone("vae.decoder", "conv", kinds=("image",))
def _vae_conv_decoder(spec, config, *, inp: int, out: int) -> nn.Module:
    return ConvDecoder(inp, spec.shape, config.width)


# ---------------------------------------------------------------------------------- GAN
@register_backbone("gan.discriminator", "mlp", kinds=("tabular",))
def _gan_mlp_discriminator(spec, config) -> nn.Module:
    return ConditionalMLP(*mlp([spec.dim + spec.n_classes, *_hidden(config), 1], act=lambda: nn.LeakyReLU(0.2)))


@register_backbone("gan.discriminator", "conv", kinds=("image",))
def _gan_conv_discriminator(spec, config) -> nn.Module:
    return ConvEncoder(spec.shape, spec.n_classes, config.width, 1)


@register_backbone("gan.generator", "mlp", kinds=("tabular",))
def _gan_mlp_generator(spec, config, *, inp: int) -> nn.Module:
    # GroupNorm(1, w) normalises each example on its own (BatchNorm would mix the batch).
    return mlp([inp, *_hidden(config), spec.dim], norm=lambda w: nn.GroupNorm(1, w))


@register_backbone("gan.generator", "conv", kinds=("image",))
def _gan_conv_generator(spec, config, *, inp: int) -> nn.Module:
    return ConvDecoder(inp, spec.shape, config.width)


# ---------------------------------------------------------------------------------- diffusion
@register_backbone("diffusion.denoiser", "mlp", kinds=("tabular",))
def _mlp_denoiser(spec, config) -> nn.Module:
    return MLPDenoiser(spec, config)


@register_backbone("diffusion.denoiser", "unet", kinds=("image",))
def _unet_denoiser(spec, config) -> nn.Module:
    return UNetDenoiser(spec, config)


# ---------------------------------------------------------------------------------- label heads
def _head_sizes(spec, config) -> list[int]:
    # label_head_hidden 0: a linear head (under DP the noise grows with the number of weights)
    hidden = [config.label_head_hidden] if config.label_head_hidden else []
    return [spec.dim, *hidden, spec.n_classes]


@register_backbone("label_head", "mlp")
def _mlp_label_head(spec, config) -> nn.Module:
    return mlp(_head_sizes(spec, config))


@register_backbone("label_head", "bayes-mlp")
def _bayes_label_head(spec, config) -> nn.Module:
    return bayes_mlp(_head_sizes(spec, config), prior_sigma=config.prior_sigma)
