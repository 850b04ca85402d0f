"""Conditional GAN: non-saturating objective with an R1 penalty on real data.

Only the discriminator sees real records, so :meth:`GAN.loss` is the discriminator's
per-example loss (real example ``i`` paired with fake example ``i``; the R1 term is example
``i``'s own input gradient, so it stays inside per-example clipping). The generator learns
only through the discriminator (:meth:`generator_loss`), with labels drawn from a prior that
the caller supplies, never from real records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from trustgen.models.backbones import build_backbone
from trustgen.models.base import GenerativeModel, randint
from trustgen.models.nets import DataSpec


@dataclass
class GANConfig:
    latent_dim: int = 32
    hidden: int = 256
    depth: int = 2
    width: int = 32
    r1_gamma: float = 1.0
    invert_steps: int = 300
    generator_net: str = "mlp"
    discriminator_net: str = "mlp"

    # Under DP: no gradient penalty (Opacus cannot clip one per example; STACK-NOTES).
    private_defaults: ClassVar[dict] = {"r1_gamma": 0.0}

    @classmethod
    def defaults_for(cls, spec: DataSpec) -> "GANConfig":
        if spec.kind == "image":
            return cls(r1_gamma=1.0, generator_net="conv", discriminator_net="conv")
        return cls(r1_gamma=0.1)


class Discriminator(nn.Module):
    """``(x, y1h) -> score``; tables may carry a pair axis (``[B, 2, d]``)."""

    def __init__(self, spec: DataSpec, c: GANConfig) -> None:
        super().__init__()
        self.net = build_backbone("gan.discriminator", c.discriminator_net, spec, c)

    def forward(self, x: torch.Tensor, y1h: torch.Tensor) -> torch.Tensor:
        return self.net(x, y1h).squeeze(-1)


class Generator(nn.Module):
    """``(z, y1h) -> sample``: tanh for numbers and pixels, softmax for each category block."""

    def __init__(self, spec: DataSpec, c: GANConfig) -> None:
        super().__init__()
        self.spec = spec
        self.net = build_backbone("gan.generator", c.generator_net, spec, c, inp=c.latent_dim + spec.n_classes)

    def forward(self, z: torch.Tensor, y1h: torch.Tensor) -> torch.Tensor:
        out = self.net(torch.cat([z, y1h], 1))
        if self.spec.kind == "image":
            return torch.tanh(out)
        parts = []
        for kind, start, size in self.spec.blocks:
            o = out[:, start:start + size]
            # Soft one-hot for categories keeps the generator differentiable; decoding takes argmax.
            parts.append(torch.tanh(o) if kind == "numeric" else torch.softmax(o, 1))
        return torch.cat(parts, 1)


class GAN(GenerativeModel):
    """Conditional GAN. Example:

        >>> spec = DataSpec("tabular", 2, 2, (("numeric", 0, 1), ("numeric", 1, 1)))
        >>> gan = GAN(spec, GANConfig())
        >>> gan.loss(torch.zeros(5, 2), torch.zeros(5, dtype=torch.long)).shape
        torch.Size([5])
    """

    family = "gan"
    objective = "adversarial"
    Config = GANConfig

    def __init__(self, spec: DataSpec, config: GANConfig) -> None:
        super().__init__(spec, config)
        self.generator = Generator(spec, config)
        self.discriminator = Discriminator(spec, config)

    def noise_shape(self) -> tuple:
        return (self.config.latent_dim,)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"discriminator": list(self.discriminator.parameters()),
                "generator": list(self.generator.parameters())}

    def loss(self, x, y=None, *, generator=None):
        """Discriminator loss per real example: ``softplus(-D(x_i)) + softplus(D(G(z_i)))
        + gamma/2 |grad_x D(x_i)|^2``. The fake ``G(z_i)`` uses example ``i``'s label."""
        b = x.shape[0]
        y1h = self.label_vector(y, b, x)
        with torch.no_grad():
            fake = self.generator(self.sample_noise(b, generator), y1h)
        real = x.detach().requires_grad_(self.config.r1_gamma > 0)
        # One discriminator pass over the (real_i, fake_i) pairs, laid out per example so that
        # per-example clipping sees both halves of example i's loss together: a [B, 2, d]
        # sequence axis for tables, example-major rows [2B, C, H, W] for images.
        pair = torch.stack([real, fake], 1)
        if self.spec.kind == "image":
            scores = self.discriminator(pair.flatten(0, 1), y1h.repeat_interleave(2, 0)).view(b, 2)
        else:
            scores = self.discriminator(pair, y1h[:, None].expand(b, 2, -1))
        loss = F.softplus(-scores[:, 0]) + F.softplus(scores[:, 1])
        if self.config.r1_gamma > 0:
            (g,) = torch.autograd.grad(scores[:, 0].sum(), real, create_graph=True)
            loss = loss + 0.5 * self.config.r1_gamma * g.flatten(1).pow(2).sum(1)
        return loss

    def private_module(self) -> nn.Module:
        return self.discriminator

    def private_rows_per_example(self) -> int:
        return 2 if self.spec.kind == "image" else 1

    def generator_loss(self, n: int, label_prior: torch.Tensor | None = None, *,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """Non-saturating generator loss for ``n`` fakes, labels drawn from ``label_prior``
        (class probabilities; uniform if None). Touches no real record."""
        like = next(self.parameters())
        y = None
        if self.spec.n_classes:
            if label_prior is None:
                y = randint(self.spec.n_classes, (n,), generator, like)
            else:
                dev = generator.device if generator is not None else like.device
                y = torch.multinomial(label_prior.to(dev), n, True, generator=generator).to(like.device)
        z = self.sample_noise(n, generator)
        y1h = self.label_vector(y, n, like)
        return F.softplus(-self.discriminator(self.generator(z, y1h), y1h))

    def generate(self, z, y=None, *, hard=True, generator=None, sampler=None, step_hooks=()):
        """The generator's sample; hard decoding turns each category block into its argmax."""
        self.no_step_hooks(step_hooks)
        out = self.generator(z, self.label_vector(y, z.shape[0], z))
        if not hard or self.spec.kind != "tabular":
            return out
        parts = [F.one_hot(out[:, s:s + k].argmax(1), k).to(out) if kind == "categorical" else out[:, s:s + k]
                 for kind, s, k in self.spec.blocks]
        return torch.cat(parts, 1)

    def private_training_issues(self) -> list[str]:
        if self.config.r1_gamma > 0:
            return ["the R1 gradient penalty cannot be clipped per example by Opacus; train a DP GAN with "
                    "--option r1_gamma=0 (the default under DP)"]
        return []

    def invert(self, x, y=None, *, sampler=None):
        """GAN inversion by optimisation: the ``z`` whose generation is closest to ``x``."""
        y1h = self.label_vector(y, x.shape[0], x).detach()
        z = torch.zeros(x.shape[0], self.config.latent_dim, device=x.device, requires_grad=True)
        opt = torch.optim.Adam([z], lr=0.05)
        for _ in range(self.config.invert_steps):
            opt.zero_grad(set_to_none=True)
            with torch.enable_grad():
                err = (self.generator(z, y1h) - x.detach()).pow(2).flatten(1).sum(1)
                (err.sum() + 0.5 * z.pow(2).sum()).backward(inputs=[z])
            opt.step()
        return z.detach()
