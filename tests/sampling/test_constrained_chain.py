"""The elliptical slice chain brings projected samples to the model's conditional distribution.

Rejection is exact (the model's distribution given the constraint); projection alone piles
samples on the boundary. Seeded, so each run is the same; were the chain exact, the KS test at
1e-3 would fail in 1 run of 1,000 seeds.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from tiny_runs import make_run
from trustgen.constraints.language import ConstraintSet, Range
from trustgen.sampling.constrained import ConstrainedSampler
from trustgen.sampling.constraint_hooks import deterministic_decode
from trustgen.sampling.config import SamplerConfig

RULE = ConstraintSet([Range("a", low=4.5)])


@pytest.mark.parametrize("family", ["gan", "diffusion"])
def test_the_chain_matches_rejection_and_projection_alone_does_not(family):
    run = make_run(family)
    exact = ConstrainedSampler(run, RULE, method="rejection").sample(1000, seed=0).data.a
    alone = ConstrainedSampler(run, RULE, method="projection", search_steps=0, mcmc_steps=0).sample(1000, seed=1)
    chain = ConstrainedSampler(run, RULE, method="projection").sample(1000, seed=1)
    assert (alone.data.a >= 4.5).all() and (chain.data.a >= 4.5).all()
    assert stats.ks_2samp(exact, alone.data.a).pvalue < 1e-6
    assert stats.ks_2samp(exact, chain.data.a).pvalue > 1e-3


def test_the_chain_only_runs_where_the_decode_is_a_function_of_the_latent():
    assert deterministic_decode(make_run("gan"), SamplerConfig())
    assert deterministic_decode(make_run("diffusion"), SamplerConfig(kind="ddim", eta=0.0))
    assert not deterministic_decode(make_run("diffusion"), SamplerConfig(kind="ddim", eta=0.5))
    assert not deterministic_decode(make_run("vae"), SamplerConfig())  # tables decode with noise
    assert deterministic_decode(make_run("vae"), SamplerConfig(deterministic=True))


def test_steps_out_of_range_are_refused():
    from trustgen.errors import ConfigError

    for bad in (-1, 1.5, True, 10**6):
        with pytest.raises(ConfigError, match="mcmc_steps must be an integer from 0 to 100,000"):
            ConstrainedSampler(make_run("gan"), RULE, mcmc_steps=bad)
    assert np.isfinite(ConstrainedSampler(make_run("gan"), RULE, search_steps=0).sample(5, seed=0).data.a).all()
