"""The contract every generative model family fulfils.

A model is an ``nn.Module`` that owns no loop, no device choice and no privacy mechanism:

* ``loss(x, y, generator=...)`` returns one loss per example (shape ``[B]``, never reduced),
  because DP-SGD clips each example's gradient. For a GAN this is the discriminator's loss,
  the only part that touches real records.
* Sampling is split at the latent noise so later stages can act on it: ``sample_noise``
  draws ``z``, ``generate(z, y)`` maps it to encoded data, ``invert(x, y)`` maps data back to a
  latent (VAE encoder, DDIM inversion, GAN inversion by optimisation). Watermarks and
  conditioning act on ``z``; constraints act on the output.
* ``generate(z, y, hard=False)`` is a soft decoding, differentiable from output to ``z``
  (category probabilities instead of one-hot codes): guidance, projection and counterfactual
  search need that gradient. ``generate`` and ``invert`` never disable autograd; ``sample``
  does, and decodes hard.
* How to sample (DDIM or DDPM, steps, guidance, a deterministic decode) is a
  :class:`~trustgen.sampling.config.SamplerConfig` chosen at sampling time, not a model option.
* A model says what it cannot do under DP (:meth:`private_training_issues`) and which of
  its options DP training changes (``Config.private_defaults``); the trainer checks no names.
* Randomness only comes from an explicit ``torch.Generator``.
* Bayesian layers (:mod:`trustgen.models.bayes`): ``loss`` draws one weight sample per step
  in ``train()`` mode; ``eval()`` mode forwards with the posterior mean; the record-free KL
  of the weights is :meth:`prior_penalty`, which the trainer adds as ``KL / n``.
"""

from __future__ import annotations

import math

import abc
from dataclasses import asdict, fields
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from trustgen.errors import ConfigError
from trustgen.models.bayes import bayesian_layers, resample_weights, use_posterior_mean, weight_kl
from trustgen.models.nets import DataSpec, one_hot
from trustgen.sampling.config import SamplerConfig


def randn(shape: tuple, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """Standard normal noise on ``like``'s device, drawn from ``generator``'s stream.

    The generator may live on the CPU while the model is on a GPU (then the draw happens on
    the CPU and is moved): results are then identical across devices for the same seed.
    """
    dev = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=dev, dtype=like.dtype).to(like.device)


def rand(shape: tuple, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    dev = generator.device if generator is not None else like.device
    return torch.rand(shape, generator=generator, device=dev, dtype=like.dtype).to(like.device)


def randint(high: int, shape: tuple, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    dev = generator.device if generator is not None else like.device
    return torch.randint(high, shape, generator=generator, device=dev).to(like.device)


class GenerativeModel(nn.Module, abc.ABC):
    """Base class: see the module docstring for the contract."""

    family: ClassVar[str]
    objective: ClassVar[Literal["likelihood", "adversarial"]] = "likelihood"
    Config: ClassVar[type]

    def __init__(self, spec: DataSpec, config: Any) -> None:
        super().__init__()
        self.spec = spec
        self.config = config

    # -- the contract -------------------------------------------------------------------
    @abc.abstractmethod
    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None, *,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Per-example training loss, shape ``[B]``."""

    @abc.abstractmethod
    def noise_shape(self) -> tuple:
        """Shape of one sample's latent noise ``z``."""

    @abc.abstractmethod
    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None, *, hard: bool = True,
                 generator: torch.Generator | None = None, sampler: SamplerConfig | None = None,
                 step_hooks: tuple = ()) -> torch.Tensor:
        """Map latent noise (and labels) to encoded samples.

        Args:
            hard: one-hot categories and in-domain values (what is released); ``False`` gives
                the soft, differentiable decoding.
            generator: randomness after ``z`` (decoder noise, DDPM); ignored when
                ``sampler.deterministic``.
            sampler: how to sample (None: :class:`SamplerConfig` defaults).
            step_hooks: callables applied at every step of a reverse process (families
                without one raise if given any).
        """

    @abc.abstractmethod
    def invert(self, x: torch.Tensor, y: torch.Tensor | None = None, *,
               sampler: SamplerConfig | None = None) -> torch.Tensor:
        """Map encoded samples back to a latent ``z`` with ``generate(z, y, sampler=sampler) ~= x``
        (differentiable for the VAE and diffusion; the GAN optimises ``z``)."""

    # -- shared behaviour ---------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def train(self, mode: bool = True) -> "GenerativeModel":
        super().train(mode)
        if not mode:
            use_posterior_mean(self)  # what is generated and scored is the posterior mean unless asked
        return self

    @property
    def bayesian(self) -> bool:
        """True when the model has mean-field layers (its uncertainty can be measured)."""
        return bool(bayesian_layers(self))

    def draw_weights(self, generator: torch.Generator | None) -> None:
        """In ``train()`` mode, one posterior draw of every Bayesian layer (a no-op otherwise)."""
        if self.training:
            resample_weights(self, generator)

    def prior_penalty(self) -> torch.Tensor:
        """KL(q(w) || p(w)) of the Bayesian layers' weights: the record-free part of the ELBO."""
        return weight_kl(self)

    def label_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The label head's logits for encoded inputs ``x`` (``[B, n_classes]``)."""
        head = getattr(self, "label_head", None)
        if head is None:
            raise ConfigError(f"this {self.family} model has no label head: train it with the option label_head="
                              "bayes-mlp (or mlp)")
        return head(x.flatten(1))

    def sample_noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        like = next(self.parameters())
        return randn((n, *self.noise_shape()), generator, like.detach())

    @torch.no_grad()
    def sample(self, n: int, *, cond: torch.Tensor | None = None,
               generator: torch.Generator | None = None, sampler: SamplerConfig | None = None) -> torch.Tensor:
        """Draw ``n`` encoded samples, conditioned on labels ``cond`` (``[n]`` ints) if given."""
        z = self.sample_noise(n, generator)
        return self.generate(z, cond, generator=generator, sampler=sampler)

    def no_step_hooks(self, step_hooks: tuple) -> None:
        """Raise for per-step hooks on a family that has no reverse process to act on."""
        if step_hooks:
            raise ConfigError(f"per-step hooks act on a reverse process; a {self.family} model has none "
                              "(use them with diffusion, or use a noise or output hook)")

    def private_training_issues(self) -> list[str]:
        """Why this model, as configured, cannot be trained with DP-SGD (empty: it can)."""
        return []

    def label_vector(self, y: torch.Tensor | None, batch: int, like: torch.Tensor) -> torch.Tensor:
        if y is not None and self.spec.n_classes == 0:
            raise ConfigError("this model is unconditional (the schema has no label): pass no labels")
        return one_hot(y, self.spec.n_classes, batch, like)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by optimiser; likelihood models have one group."""
        return {"model": list(self.parameters())}

    def private_module(self) -> nn.Module:
        """The sub-module whose training touches private records (DP-SGD wraps only this)."""
        return self

    def clipping_groups(self) -> list[tuple[list[nn.Parameter], float]] | None:
        """Under DP, parts of :meth:`private_module` whose per-example gradients are clipped
        apart, each to ``C * sqrt(share)`` (``[(parameters, share), ...]``); None: one clip."""
        return None

    def private_rows_per_example(self) -> int:
        """How many consecutive batch rows of :meth:`private_module`'s layers belong to one
        example (1 unless a family stacks several passes of one example example-major)."""
        return 1

    def config_dict(self) -> dict:
        return asdict(self.config)


#: Allowed values of the numeric options every family shares, checked before anything is
#: allocated (options come from the command line and from received run.json files): name ->
#: (lowest, highest, why). The limits keep a model under about a billion parameters.
OPTION_RANGES: dict[str, tuple[float, float, str]] = {
    "latent_dim": (1, 1024, ""), "hidden": (1, 4096, ""), "depth": (1, 16, ""), "width": (1, 512, ""),
    "time_dim": (2, 4096, "an even number"), "timesteps": (1, 100_000, ""), "noise_multiplicity": (1, 64, ""),
    "invert_steps": (0, 100_000, ""), "beta": (0.0, 1e6, ""), "r1_gamma": (0.0, 1e6, ""),
    "label_dropout": (0.0, 0.99, ""), "prior_sigma": (0.0, 1e3, ""),
    "label_head_share": (0.0, 0.99, ""), "label_head_hidden": (0, 4096, ""),
}
_POSITIVE = ("beta", "prior_sigma", "label_head_share")  # ranges open at their lower end


def _check_range(config_name: str, name: str, value: Any) -> None:
    if name not in OPTION_RANGES or isinstance(value, (bool, str)):
        return
    low, high, extra = OPTION_RANGES[name]
    finite = isinstance(value, int) or math.isfinite(value)  # an int may exceed every float: no isfinite
    ok = finite and low <= value <= high and (name != "time_dim" or value % 2 == 0)
    if name in _POSITIVE:
        ok = ok and value > 0
    if not ok:
        span = f"in ({low}, {high}]" if name in _POSITIVE else f"from {low} to {high}"
        raise ConfigError(f"{config_name} option {name!r} must be {extra + ' ' if extra else ''}{span}, got {value!r}")


def make_config(config_cls: type, spec: DataSpec, overrides: dict | None, *, private: bool = False) -> Any:
    """Build a family's config: its defaults for this kind of data, then (under DP) its
    ``private_defaults``, then the user's overrides."""
    overrides = dict(overrides or {})
    names = {f.name for f in fields(config_cls)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        legacy = sorted(getattr(config_cls, "sampling_options", {}))
        also = f"; at training also {legacy}, kept as the run's sampling defaults" if legacy else ""
        raise ConfigError(f"unknown {config_cls.__name__} options {unknown} (known: {sorted(names)}{also})")
    base = config_cls.defaults_for(spec) if hasattr(config_cls, "defaults_for") else config_cls()
    for name, value in overrides.items():
        want = type(getattr(base, name))
        ok = isinstance(value, want) and not (isinstance(value, bool) and want is not bool)
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise ConfigError(f"{config_cls.__name__} option {name!r} must be of type {want.__name__}, got {value!r}")
    dp = dict(getattr(config_cls, "private_defaults", {})) if private else {}
    values = {**asdict(base), **dp, **overrides}
    for name, value in values.items():
        _check_range(config_cls.__name__, name, value)
    return type(base)(**values)
