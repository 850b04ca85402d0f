"""``Sampler.stream``: the samples of ``sample(n)``, batch by batch, with the same draws.

Oracles: ``sample(n)`` itself (the stream concatenated must equal it exactly), and the order of
draws ``sample`` had before streaming existed (all prior labels in one ``torch.multinomial``
call, then noise and generation per batch), re-implemented here, which the regression pins
record for small n.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tiny_runs import IMAGES, TABLE, make_run
from trustgen.data.schema import ImageSchema
from trustgen.errors import ConfigError
from trustgen.sampling import Sampler
from trustgen.sampling import labels as labels_module
from trustgen.sampling.labels import PriorDraws, label_pieces

UNLABELLED = ImageSchema(channels=1, height=8, width=8, low=0.0, high=16.0, classes=None, source="declared")


def _concat(batches):
    data = batches[0].data
    if isinstance(data, pd.DataFrame):
        data = pd.concat([b.data for b in batches], ignore_index=True)
    else:
        data = type(data)(np.concatenate([b.data.x for b in batches]),
                          None if data.y is None else np.concatenate([b.data.y for b in batches]))
    cat = (lambda xs: None if xs[0] is None else np.concatenate(xs))
    return (data, cat([b.labels for b in batches]), torch.cat([b.encoded for b in batches]),
            torch.cat([b.noise for b in batches]))


def _assert_same(stream_batches, batch):
    data, labels, encoded, noise = _concat(stream_batches)
    assert torch.equal(encoded, batch.encoded) and torch.equal(noise, batch.noise)
    if batch.labels is None:
        assert labels is None
    else:
        np.testing.assert_array_equal(labels, batch.labels)
    if isinstance(data, pd.DataFrame):
        pd.testing.assert_frame_equal(data, batch.data)
    else:
        np.testing.assert_array_equal(data.x, batch.data.x)


@pytest.mark.parametrize("schema", [TABLE, IMAGES], ids=["table", "images"])
@pytest.mark.parametrize("labels", [None, "yes", "sequence"])
def test_the_stream_concatenated_is_sample_bit_for_bit(family, schema, labels):
    run = make_run(family, schema)
    n = 23
    if labels == "yes" and schema is IMAGES:
        labels = 3
    if labels == "sequence":
        labels = list(np.arange(n) % schema.n_classes)
    sampler = Sampler(run, batch_size=5)
    batches = list(sampler.stream(n, labels=labels, seed=11))
    assert [len(b.encoded) for b in batches] == [5, 5, 5, 5, 3]
    assert all(b.seed == 11 for b in batches)
    _assert_same(batches, sampler.sample(n, labels=labels, seed=11))


def test_an_unconditional_stream_is_sample_too(family):
    run = make_run(family, UNLABELLED)
    sampler = Sampler(run, batch_size=4)
    batches = list(sampler.stream(9, seed=2))
    assert all(b.labels is None for b in batches)
    _assert_same(batches, sampler.sample(9, seed=2))


def _old_sample(sampler: Sampler, n: int, seed: int):
    """The draws of ``Sampler.sample`` before streaming: every prior label first, then per batch."""
    run, gen = sampler.run, torch.Generator().manual_seed(seed)
    prior = torch.tensor(run.label_prior, dtype=torch.float64)
    y_all = torch.multinomial(prior, n, replacement=True, generator=gen)
    xs, zs = [], []
    for s in range(0, n, sampler.batch_size):
        yb = y_all[s:s + sampler.batch_size].to(run.model.device)
        z = run.model.sample_noise(len(yb), gen)
        xs.append(run.model.generate(z, yb, generator=gen, sampler=sampler.config).float().cpu())
        zs.append(z.float().cpu())
    return y_all.numpy(), torch.cat(xs), torch.cat(zs)


@pytest.mark.parametrize("n", [1, 2, 9, 13, 14])
def test_sample_keeps_the_draws_it_always_made_when_labels_come_in_pieces(family, n, monkeypatch):
    # Pieces of 4 labels: 9 = 4 + 3 + 2 (never a piece of 1, which multinomial draws otherwise),
    # 13 = 4 + 4 + 3 + 2, 14 = 4 + 4 + 4 + 2; and batches of 3 across them.
    monkeypatch.setattr(labels_module, "PRIOR_PIECE", 4)
    run = make_run(family)
    run.label_prior = [0.3, 0.7]
    sampler = Sampler(run, batch_size=3)
    with torch.no_grad():
        y, x, z = _old_sample(sampler, n, seed=5)
    batch = sampler.sample(n, seed=5)
    np.testing.assert_array_equal(batch.labels, y)
    assert torch.equal(batch.encoded, x) and torch.equal(batch.noise, z)
    _assert_same(list(sampler.stream(n, seed=5)), batch)


@pytest.mark.parametrize("n, piece", [(1, 4), (5, 4), (9, 4), (8, 4), (3, 3), (10, 3), (70_001, 1000)])
def test_prior_pieces_sum_to_n_and_are_never_one_label(n, piece):
    sizes = list(label_pieces(n, piece))
    assert sum(sizes) == n and all(1 < s <= piece for s in sizes if n > 1)


def test_prior_draws_in_pieces_equal_one_multinomial_and_leave_the_generator_alike():
    prior = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    n = 1001
    one = torch.Generator().manual_seed(3)
    expected = torch.multinomial(prior, n, replacement=True, generator=one)
    gen = torch.Generator().manual_seed(3)
    draws = PriorDraws(prior, n, gen, piece=10)
    assert torch.equal(torch.rand(4, generator=gen), torch.rand(4, generator=one))  # the noise starts alike
    got = torch.cat([draws.take(m) for m in (7, 300, 1, 693)])
    assert torch.equal(got, expected)
    with pytest.raises(ConfigError, match="more than the 1001"):
        draws.take(1)


def test_the_stream_checks_its_arguments_before_drawing_anything(family):
    sampler = Sampler(make_run(family))
    for n in (0, -1, 2.5, True):
        with pytest.raises(ConfigError, match="positive integer"):
            sampler.stream(n)
    with pytest.raises(ConfigError, match="unknown label"):
        sampler.stream(5, labels="maybe")  # raised at the call, not at the first batch
    with pytest.raises(ConfigError, match="3 labels given for 5"):
        sampler.stream(5, labels=["yes", "no", "yes"])


def test_progress_counts_every_network_pass(family):
    run = make_run(family)
    calls = []
    sampler = Sampler(run, batch_size=5, progress=lambda done, total: calls.append((done, total)))
    batch = sampler.sample(23, seed=0)
    # 5 batches; diffusion: each takes 20 steps (50 DDIM steps visit each of its 20 timesteps once)
    total = 5 * (run.model.config.timesteps if family == "diffusion" else 1)
    assert calls == [(i, total) for i in range(1, total + 1)]
    quiet = Sampler(run, batch_size=5).sample(23, seed=0)  # the progress hook changes nothing
    assert torch.equal(quiet.encoded, batch.encoded)
