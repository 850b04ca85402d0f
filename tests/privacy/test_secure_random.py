"""The DP noise and batch source: secure keys, addressed draws, the right distributions."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from trustgen.privacy.secure_random import KEY_BYTES, SecureRandom, key_from_seed, new_key


def test_keys_that_differ_in_one_high_bit_give_unrelated_noise():
    """torch's Mersenne Twister keeps 32 bits of a seed: seeds 1 and 1 + 2^40 gave the same
    noise (shared/STACK-NOTES.md). Here every key bit matters."""
    base = bytearray(key_from_seed(1))
    flipped = bytearray(base)
    flipped[0] ^= 0x80  # the highest bit of the key
    a = SecureRandom(bytes(base)).normal((1000,), "dp-noise", 0)
    b = SecureRandom(bytes(flipped)).normal((1000,), "dp-noise", 0)
    assert not torch.equal(a, b) and abs(torch.corrcoef(torch.stack([a, b]))[0, 1]) < 0.15
    assert key_from_seed(1) != key_from_seed(1 + 2 ** 40) and len(new_key()) == KEY_BYTES
    assert new_key() != new_key()


def test_draws_are_addressed_by_purpose_step_and_part():
    rng = SecureRandom(key_from_seed(3))
    a = rng.normal((50,), "dp-noise", 7)
    assert torch.equal(a, rng.normal((50,), "dp-noise", 7))  # resuming needs nothing but the key
    for other in [rng.normal((50,), "dp-noise", 8), rng.normal((50,), "poisson", 7), rng.normal((50,), "dp-noise", 7, 1)]:
        assert not torch.equal(a, other)
    # A longer draw at the same address starts with the shorter one... for uniforms:
    assert torch.equal(rng.uniform(10, "u", 0), rng.uniform(20, "u", 0)[:10])


def test_normal_and_uniform_distributions():
    """Seed fixed (key_from_seed(0)); KS tests at alpha 1e-4 each (false-failure rate < 3e-4)."""
    rng = SecureRandom(key_from_seed(0))
    z = rng.normal((200_000,), "dp-noise", 0).double().numpy()
    assert stats.kstest(z, "norm").pvalue > 1e-4
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.01
    u = rng.uniform(200_000, "poisson", 0).numpy()
    assert stats.kstest(u, "uniform").pvalue > 1e-4 and 0 < u.min() and u.max() < 1
    assert 0 <= rng.seed("model-noise", 0) < 2 ** 63


def test_the_key_never_shows_in_a_repr():
    rng = SecureRandom(key_from_seed(5))
    assert key_from_seed(5).hex() not in repr(rng) and "secret" in repr(rng)
    with pytest.raises(ValueError, match="32 bytes"):
        SecureRandom(b"short")
