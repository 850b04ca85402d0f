"""Conditional variational autoencoder with likelihoods chosen by the schema.

Tabular: a Gaussian likelihood (with a per-example predicted scale) for each number, a
categorical likelihood for each one-hot block. Images: a Bernoulli likelihood on pixels
rescaled to [0, 1] (soft targets), decoded by the mean. The encoder gives ``invert``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from trustgen.errors import ConfigError
from trustgen.models.backbones import build_backbone
from trustgen.models.base import GenerativeModel, rand, randn
from trustgen.models.nets import DataSpec

LOG_SCALE_MIN, LOG_SCALE_MAX = -7.0, 2.0
#: Where a number's predicted log-scale starts (the bias of its decoder output; the encoded
#: range is [-1, 1], so 0 would start every number at a spread as wide as its whole range). Adam
#: moves a parameter by at most about its learning rate per step, so a DP run of ~1,000 steps
#: moves a log-scale by about 1 at most: it has to start near the middle of the plausible range
#: (-4 to 0) to reach any end of it. Measured on breast_cancer at epsilon 1 (800 steps): starting
#: at 0 the samples kept a spread of 0.25 of each range (real: 0.06-0.19), a 1-way distance of
#: 0.44; starting here, 0.30 (3 seeds). Only the initial value: a saved run carries its own.
LOG_SCALE_START = -2.0


@dataclass
class VAEConfig:
    latent_dim: int = 16
    hidden: int = 256
    depth: int = 2
    width: int = 32
    beta: float = 1.0
    encoder_net: str = "mlp"
    decoder_net: str = "mlp"
    label_head: str = "none"
    label_head_share: float = 0.5
    label_head_hidden: int = 64
    prior_sigma: float = 1.0

    # Under DP a label head is linear unless asked otherwise: the noise on its gradient grows with
    # its number of weights (measured on breast_cancer at epsilon 1: a 64-unit head stays at chance).
    private_defaults: ClassVar[dict] = {"label_head_hidden": 0}

    @classmethod
    def defaults_for(cls, spec: DataSpec) -> "VAEConfig":
        if spec.kind == "image":
            return cls(latent_dim=16, encoder_net="conv", decoder_net="conv")
        return cls(latent_dim=8)


class VAE(GenerativeModel):
    """Conditional VAE. Example:

        >>> spec = DataSpec("tabular", 3, 2, (("numeric", 0, 1), ("categorical", 1, 2)))
        >>> m = VAE(spec, VAEConfig())
        >>> m.loss(torch.zeros(4, 3), torch.tensor([0, 1, 0, 1])).shape
        torch.Size([4])
    """

    family = "vae"
    Config = VAEConfig

    def __init__(self, spec: DataSpec, config: VAEConfig) -> None:
        super().__init__(spec, config)
        k, nc = config.latent_dim, spec.n_classes
        self.numeric = [b for b in spec.blocks if b[0] == "numeric"]
        self.categorical = [b for b in spec.blocks if b[0] == "categorical"]
        self.encoder = build_backbone("vae.encoder", config.encoder_net, spec, config, out=2 * k)
        # Tables: one extra output per number, its log-scale (predicted, so Opacus sees it inside a layer).
        self.decoder = build_backbone("vae.decoder", config.decoder_net, spec, config, inp=k + nc,
                                      out=spec.dim + len(self.numeric))
        if config.label_head != "none":
            if nc < 2:
                raise ConfigError("a label head needs labelled data (a schema with a label of 2 or more classes)")
            self.label_head = build_backbone("label_head", config.label_head, spec, config)
        if self.numeric:
            self._start_log_scales()

    def _start_log_scales(self) -> None:
        """Shift the decoder's output bias of each log-scale by :data:`LOG_SCALE_START` (no
        random draw: the seeded initialisation is otherwise unchanged). The output layer is
        the decoder's last linear layer with one bias per output; a registered backbone
        without one (its own output head) starts where it starts."""
        out = self.spec.dim + len(self.numeric)
        biases = [getattr(m, "bias_mu", getattr(m, "bias", None)) for m in self.decoder.modules()
                  if isinstance(m, torch.nn.Linear) or hasattr(m, "bias_mu")]
        biases = [b for b in biases if isinstance(b, torch.Tensor) and b.shape == (out,)]
        if biases:
            with torch.no_grad():
                biases[-1][self.spec.dim:].add_(LOG_SCALE_START)

    def noise_shape(self) -> tuple:
        return (self.config.latent_dim,)

    def encode(self, x: torch.Tensor, y1h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x, y1h)
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)

    def decode(self, z: torch.Tensor, y1h: torch.Tensor) -> torch.Tensor:
        return self.decoder(torch.cat([z, y1h], 1))

    def reconstruction_nll(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of ``x`` under the decoder output, per example."""
        if self.spec.kind == "image":
            target = (x + 1.0) / 2.0
            return F.binary_cross_entropy_with_logits(out, target, reduction="none").flatten(1).sum(1)
        nll = out.new_zeros(out.shape[0])
        d = self.spec.dim
        for j, (_, start, _) in enumerate(self.numeric):
            mean, log_s = out[:, start], out[:, d + j].clamp(LOG_SCALE_MIN, LOG_SCALE_MAX)
            nll = nll + 0.5 * ((x[:, start] - mean) / log_s.exp()) ** 2 + log_s
        for _, start, size in self.categorical:
            target = x[:, start:start + size].argmax(1)
            nll = nll + F.cross_entropy(out[:, start:start + size], target, reduction="none")
        return nll

    def loss(self, x, y=None, *, generator=None):
        self.draw_weights(generator)
        y1h = self.label_vector(y, x.shape[0], x)
        mu, logvar = self.encode(x, y1h)
        z = mu + (0.5 * logvar).exp() * randn(mu.shape, generator, mu)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
        loss = self.reconstruction_nll(self.decode(z, y1h), x) + self.config.beta * kl
        if getattr(self, "label_head", None) is not None and y is not None:
            # The classifier beside the generator: same examples, same clipping, same privacy cost.
            loss = loss + F.cross_entropy(self.label_logits(x), y, reduction="none")
        return loss

    def generate(self, z, y=None, *, hard=True, generator=None, sampler=None, step_hooks=()):
        """Decode ``z``. Images: the Bernoulli mean. Tables, hard: numbers drawn from their
        Gaussian and categories from their softmax when ``generator`` is given (and the
        decode is not deterministic), else means and modes. Soft: means (not clipped to the
        domain) and category probabilities, differentiable in ``z``."""
        self.no_step_hooks(step_hooks)
        if sampler is not None and sampler.deterministic:
            generator = None
        y1h = self.label_vector(y, z.shape[0], z)
        out = self.decode(z, y1h)
        if self.spec.kind == "image":
            return torch.sigmoid(out) * 2.0 - 1.0
        d = self.spec.dim
        values = {}
        # Draw order (numbers, then categories) is part of what a seed reproduces.
        for j, (_, start, _) in enumerate(self.numeric):
            mean = out[:, start:start + 1]
            if hard and generator is not None:
                log_s = out[:, d + j:d + j + 1].clamp(LOG_SCALE_MIN, LOG_SCALE_MAX)
                mean = mean + log_s.exp() * randn(mean.shape, generator, mean)
            values[start] = mean.clamp(-1.0, 1.0) if hard else mean
        for _, start, size in self.categorical:
            logits = out[:, start:start + size]
            if not hard:
                values[start] = torch.softmax(logits, 1)
                continue
            if generator is not None:
                u = rand(logits.shape, generator, logits)
                logits = logits - torch.log(-torch.log(u.clamp_min(1e-12)))  # Gumbel-max draw
            values[start] = F.one_hot(logits.argmax(1), size).to(out.dtype)
        return torch.cat([values[start] for _, start, _ in self.spec.blocks], 1)

    def clipping_groups(self):
        """With a label head: the head's gradient is clipped apart from the VAE's, to
        ``C * sqrt(label_head_share)`` (a VAE's gradient is far larger, and one clip would leave
        the head almost nothing but noise: measured, a DP head at chance level)."""
        head = getattr(self, "label_head", None)
        if head is None:
            return None
        own = {id(p) for p in head.parameters()}
        rest = [p for p in self.parameters() if id(p) not in own]
        share = self.config.label_head_share
        return [(rest, 1.0 - share), (list(head.parameters()), share)]

    def invert(self, x, y=None, *, sampler=None):
        """The encoder's mean: the latent ``z`` of ``x`` (differentiable)."""
        mu, _ = self.encode(x, self.label_vector(y, x.shape[0], x))
        return mu
