"""Per-sample uncertainty of generated samples: the spread across posterior weight draws.

For one latent ``z`` (and label), a Bayesian decoder maps ``z`` through ``K`` draws of its
weights; the samples it would have produced differ only by what the model is unsure of
(epistemic uncertainty), not by the sampling noise, which is held fixed. The standard
deviation across draws, per output value, is the **uncertainty map**; its mean over the
values is the sample's **score**. Units: images in [0, 1] intensity (the pixel range over
2); tables in the encoded units (numbers scaled to [-1, 1] by their public bounds,
categories as probabilities).

Nothing here reads training data: the scores are functions of the released weights and of
the samples' own noise, so they are as private as the samples.

Example:
    >>> u = sample_uncertainty(run.model, batch.noise, batch.labels, draws=16, seed=0)  # doctest: +SKIP
    >>> u.score.shape, u.map.shape  # doctest: +SKIP
    ((100,), (100, 1, 8, 8))
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np
import torch

from trustgen.errors import ConfigError
from trustgen.models.base import GenerativeModel
from trustgen.models.bayes import bayesian_layers, resample_weights, use_posterior_mean

MAX_DRAWS = 1024
NOT_BAYESIAN = ("this run has no Bayesian layers, so it has no posterior to draw from: train it with "
                "--option decoder_net=bayes-mlp (VAE)")


@dataclass(frozen=True)
class SampleUncertainty:
    """Spread across posterior draws. ``score``: ``[n]``; ``map``: ``[n, C, H, W]`` for
    images, ``[n, dim]`` (encoded units) for tables; ``draws``: how many weight draws.
    ``label_disagreement`` (runs with a label head and labelled samples): one minus the
    probability the head gives the sample's own label, averaged over the draws (the head's
    weights and the decoder's drawn together): high when the decoded sample does not look like
    the class it was asked for under some plausible weights."""

    score: np.ndarray
    map: np.ndarray
    draws: int
    label_disagreement: np.ndarray | None = None


def check_draws(draws) -> int:
    if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or not 2 <= draws <= MAX_DRAWS:
        raise ConfigError(f"posterior draws must be an integer from 2 to {MAX_DRAWS}, got {draws!r}")
    return int(draws)


def check_bayesian(model: GenerativeModel) -> None:
    if model.family != "vae":
        raise ConfigError(f"posterior uncertainty is built for the VAE; this run is a {model.family} "
                          "(docs/uncertainty.md says what each family supports)")
    if not bayesian_layers(model.decoder):  # a Bayesian label head alone gives no spread to the decoder
        raise ConfigError(NOT_BAYESIAN)


@contextmanager
def posterior_draws(model: GenerativeModel, draws: int, seed: int | None) -> Iterator[Iterator[int]]:
    """Yield an iterator over ``draws`` weight draws of ``model`` (each step sets the next
    draw, from a generator seeded with ``seed``), in ``eval()`` mode; the posterior mean and
    the model's train/eval mode are restored at the end, whatever happens."""
    gen = torch.Generator()
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(seed)
    was_training = model.training
    model.eval()

    def steps():
        for k in range(draws):
            resample_weights(model, gen)
            yield k

    try:
        yield steps()
    finally:
        use_posterior_mean(model)
        model.train(was_training)


@torch.no_grad()
def sample_uncertainty(model: GenerativeModel, noise, labels=None, *, draws: int = 16, seed: int | None = 0,
                       batch_size: int = 1000) -> SampleUncertainty:
    """The spread of ``model``'s soft decoding of ``noise`` (with ``labels``) across ``draws``
    posterior draws (see the module docstring)."""
    check_bayesian(model)
    draws = check_draws(draws)
    z = torch.as_tensor(noise, dtype=torch.float32)
    y = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.long)
    dev = model.device
    if seed is None:
        seed = torch.Generator().seed()  # one random seed, so every batch still sees the same draws
    head = getattr(model, "label_head", None) is not None and y is not None
    maps, disagree = [], []
    for s in range(0, len(z), batch_size):
        zb = z[s:s + batch_size].to(dev)
        yb = None if y is None else y[s:s + batch_size].to(dev)
        # The same seed for every batch: each sample sees the same K weight draws.
        with posterior_draws(model, draws, seed) as steps:
            outs, agree = [], []
            for _ in steps:
                x = model.generate(zb, yb, hard=False).float()
                outs.append((x + 1.0) / 2.0 if model.spec.kind == "image" else x)
                if head:
                    agree.append(torch.softmax(model.label_logits(x), 1).gather(1, yb[:, None])[:, 0])
        maps.append(torch.stack(outs).std(0, unbiased=True).cpu())
        if head:
            disagree.append(1.0 - torch.stack(agree).mean(0).cpu())
    m = torch.cat(maps).numpy().astype(np.float32)
    dis = torch.cat(disagree).numpy().astype(np.float32) if head else None
    return SampleUncertainty(m.reshape(len(m), -1).mean(1), m, draws, dis)


def with_uncertainty(batch, model: GenerativeModel, *, draws: int = 16, seed: int = 0):
    """A copy of ``batch`` (a :class:`~trustgen.sampling.sampler.SampleBatch`) with its
    uncertainty fields filled from its own noise and labels (the same ``seed`` gives every
    batch of a stream the same weight draws)."""
    u = sample_uncertainty(model, batch.noise, batch.labels, draws=draws, seed=seed)
    return replace(batch, uncertainty=u.score, uncertainty_map=u.map, label_disagreement=u.label_disagreement)


__all__ = ["with_uncertainty", "MAX_DRAWS", "SampleUncertainty", "check_bayesian", "check_draws", "posterior_draws",
           "sample_uncertainty"]
