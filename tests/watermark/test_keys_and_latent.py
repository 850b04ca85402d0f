"""Watermark keys, the exact null of the detection statistics, and the latent watermark.

Statistical tests use fixed keys (``WatermarkKey.from_seed``) and fixed sampling seeds, so they
are deterministic; each states the chance that a correct implementation would fail it.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from trustgen.errors import ConfigError
from trustgen.sampling import Sampler
from trustgen.sampling.config import SamplerConfig
from trustgen.watermark.keys import WatermarkKey, WatermarkKeyError
from trustgen.watermark.latent import LatentWatermark, detect_latent, sign_patterns
from trustgen.watermark.stats import Detection, binomial_p_value

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sampling"))
from tiny_runs import IMAGES, make_run  # noqa: E402


# ------------------------------------------------------------------------------- keys
def test_a_key_file_is_owner_only_never_overwritten_and_round_trips(tmp_path):
    key = WatermarkKey.generate()
    key.save(tmp_path / "k.json")
    assert stat.S_IMODE(os.stat(tmp_path / "k.json").st_mode) == 0o600
    assert WatermarkKey.load(tmp_path / "k.json") == key and key.secret.hex() not in repr(key)
    with pytest.raises(WatermarkKeyError, match="never overwritten"):
        WatermarkKey.generate().save(tmp_path / "k.json")
    assert WatermarkKey.load(tmp_path / "k.json") == key


@pytest.mark.parametrize("change, words", [
    (lambda o: o.update(kind="trustgen-run"), "not a trustgen watermark key"),
    (lambda o: o.update(version=2), "another version"),
    (lambda o: o.update(extra=1), "unknown fields"),
    (lambda o: o.update(secret="zz" * 32), "damaged"),
    (lambda o: o.update(secret=o["secret"][:-2]), "damaged"),
    (lambda o: o.update(key_id="0" * 16), "key_id does not match"),
])
def test_a_malformed_key_file_is_refused_naming_the_problem(tmp_path, change, words):
    WatermarkKey.from_seed(1).save(tmp_path / "k.json")
    obj = json.loads((tmp_path / "k.json").read_text())
    change(obj)
    (tmp_path / "k.json").write_text(json.dumps(obj))
    with pytest.raises(WatermarkKeyError, match=words):
        WatermarkKey.load(tmp_path / "k.json")


def test_binary_missing_and_wrong_shape_key_files_are_refused(tmp_path):
    (tmp_path / "bin").write_bytes(b"\x89PNG\x00\xff")
    (tmp_path / "list").write_text("[1, 2]")
    for name, words in (("bin", "not a JSON text file"), ("list", "JSON object"), ("missing", "does not exist")):
        with pytest.raises(WatermarkKeyError, match=words):
            WatermarkKey.load(tmp_path / name)


def test_keyed_uniforms_are_reproducible_and_differ_across_keys_and_purposes():
    a, b = WatermarkKey.from_seed(1), WatermarkKey.from_seed(2)
    assert np.array_equal(a.uniform(8, "x", 3), a.uniform(8, "x", 3))
    assert not np.array_equal(a.uniform(8, "x", 3), b.uniform(8, "x", 3))
    assert not np.array_equal(a.uniform(8, "x", 3), a.uniform(8, "y", 3))
    assert not np.array_equal(a.uniform(8, "x", 3), a.uniform(8, "x", 4))


# ------------------------------------------------------------------------------- statistics
def test_binomial_p_values_are_exact_tails():
    assert binomial_p_value(0, 10, 0.5) == pytest.approx(1.0)
    assert binomial_p_value(10, 10, 0.5) == pytest.approx(2.0 ** -10)
    assert binomial_p_value(8, 10, 0.5) == pytest.approx((45 + 10 + 1) / 1024)
    d = Detection.from_counts("t", "id", np.array([10, 0]), 10, 0.5, fpr=0.01)
    assert d.p_value == pytest.approx(binomial_p_value(10, 20, 0.5)) and d.detected.tolist() == [True, False]
    with pytest.raises(ConfigError, match="false-positive rate"):
        Detection.from_counts("t", "id", np.array([1]), 10, 0.5, fpr=0.0)


# ------------------------------------------------------------------------------- latent watermark
def test_over_keys_the_watermarked_noise_is_standard_normal():
    """Signs from the key, magnitudes from the stream. For one noise draw, 2,000 keys give signs
    that are fair coins (each entry Binomial(2000, 1/2): sd 0.011, bound 0.06); with fresh noise
    per key the entries are N(0, 1) (KS test at 1e-4). Chance a correct implementation fails:
    below 1e-3."""
    z = torch.randn(1, 64, generator=torch.Generator().manual_seed(0))
    out = torch.cat([LatentWatermark(WatermarkKey.from_seed(i), patterns=4)(z, None,
                     torch.Generator().manual_seed(i)).z for i in range(2000)])
    assert torch.equal(out.abs(), z.abs().expand_as(out))
    assert ((out > 0).float().mean(0) - 0.5).abs().max() < 0.06
    fresh = torch.cat([LatentWatermark(WatermarkKey.from_seed(i), patterns=4)(
        torch.randn(1, 16, generator=torch.Generator().manual_seed(10_000 + i)), None,
        torch.Generator().manual_seed(i)).z for i in range(2000)])
    assert stats.kstest(fresh.flatten().numpy(), "norm").pvalue > 1e-4


def test_the_null_is_exact_over_keys_for_content_made_without_the_key():
    """For fixed latents, p-values over 400 keys are super-uniform (Bonferroni over patterns):
    the share below 0.05 stays under the 99.9% binomial bound of 0.05."""

    class Identity:  # a model whose inversion is exact: the latent is the sample
        @staticmethod
        def invert(x, y=None):
            return torch.as_tensor(x)

    z = torch.randn(50, 32, generator=torch.Generator().manual_seed(1))
    p = np.concatenate([detect_latent(Identity, WatermarkKey.from_seed(i), z, patterns=8,
                                      center=torch.zeros(32)).p_values for i in range(400)])
    bound = stats.binom.ppf(0.999, len(p), 0.05) / len(p)
    assert (p <= 0.05).mean() <= bound


def test_exact_inversion_detects_every_sample_and_another_key_none():
    class Identity:
        @staticmethod
        def invert(x, y=None):
            return torch.as_tensor(x)

    key, other = WatermarkKey.from_seed(3), WatermarkKey.from_seed(4)
    z = LatentWatermark(key)(torch.randn(200, 64), None, torch.Generator().manual_seed(0)).z
    right = detect_latent(Identity, key, z, center=torch.zeros(64))
    wrong = detect_latent(Identity, other, z, center=torch.zeros(64))
    assert right.detected.all() and right.p_values.max() <= 4096 * 2.0 ** -64 and right.file_detected
    assert not wrong.detected.any() and not wrong.file_detected


def test_the_hook_composes_with_the_sampler_and_its_key_id_travels_on_the_batch():
    run = make_run("diffusion", IMAGES)
    key = WatermarkKey.from_seed(5)
    cfg = SamplerConfig(steps=10, deterministic=True, clip=False)
    batch = Sampler(run, config=cfg, noise_hooks=[LatentWatermark(key)], batch_size=16).sample(40, seed=0)
    assert batch.watermark_key_id == key.key_id and key.secret.hex() not in repr(batch)
    streamed = list(Sampler(run, config=cfg, noise_hooks=[LatentWatermark(key)], batch_size=16).stream(40, seed=0))
    assert torch.equal(torch.cat([b.encoded for b in streamed]), batch.encoded)
    d = detect_latent(Sampler(run, config=cfg), key, batch.encoded, batch.labels)
    assert d.detected.mean() >= 0.9  # DDIM inversion of 10 steps: most of the 64 signs come back
    plain = Sampler(run, config=cfg).sample(40, seed=0)
    assert not detect_latent(Sampler(run, config=cfg), key, plain.encoded, plain.labels).detected.any()


def test_patterns_are_balanced_signs():
    p = sign_patterns(WatermarkKey.from_seed(6), 1000, patterns=4)
    assert set(p.unique().tolist()) == {-1.0, 1.0} and abs(p.mean().item()) < 0.1
