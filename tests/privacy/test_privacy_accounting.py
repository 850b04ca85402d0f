"""Accounting: our epsilon against independent accountants, calibration, delta policy, resumable state.

Independent references: Google's ``dp_accounting`` (RDP and PLD accountants, a separate code base
from Opacus) and Microsoft's ``prv_accountant``. All computations are deterministic.
"""

from __future__ import annotations

import io
import math
import time

import dp_accounting
import numpy as np
import pytest
import torch
from dp_accounting import pld, rdp

from trustgen.errors import PrivacyError
from trustgen.privacy import accounting as acc_mod
from trustgen.privacy.accountant import Accountant
from trustgen.privacy.accounting import (
    RDP_ORDERS,
    calibrate_noise,
    check_delta,
    default_delta,
    epsilon_for,
    epsilon_of_history,
)

# (sigma, q, steps, delta); the first is the STACK-NOTES setting.
SETTINGS = [
    (1.0, 0.01, 10_000, 1e-5),
    (0.8, 0.01, 10_000, 1e-5),
    (2.0, 0.05, 2_000, 1e-6),
    (1.5, 1.0, 10, 1e-5),
]


def _event(sigma: float, q: float, steps: int) -> dp_accounting.DpEvent:
    return dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps
    )


def _dpa_rdp(segments, delta: float) -> float:
    a = rdp.RdpAccountant(orders=list(RDP_ORDERS))
    for sigma, q, steps in segments:
        a.compose(_event(sigma, q, steps))
    return a.get_epsilon(delta)


def _dpa_pld(segments, delta: float) -> float:
    a = pld.PLDAccountant()
    for sigma, q, steps in segments:
        a.compose(_event(sigma, q, steps))
    return a.get_epsilon(delta)


# ------------------------------------------------------------------------------------------------
# epsilon vs independent accountants
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma,q,steps,delta", SETTINGS)
def test_rdp_matches_dp_accounting_rdp(sigma, q, steps, delta):
    ours = epsilon_for(sigma, q, steps, delta, accountant="rdp")
    ref = _dpa_rdp([(sigma, q, steps)], delta)
    assert ours == pytest.approx(ref, rel=0.01)


def test_rdp_stack_notes_value():
    assert epsilon_for(1.0, 0.01, 10_000, 1e-5, accountant="rdp") == pytest.approx(6.713, abs=1e-3)


@pytest.mark.parametrize("sigma,q,steps,delta", SETTINGS)
def test_prv_matches_dp_accounting_pld(sigma, q, steps, delta):
    ours = epsilon_for(sigma, q, steps, delta, accountant="prv")
    ref = _dpa_pld([(sigma, q, steps)], delta)
    assert ours == pytest.approx(ref, rel=0.01)
    # we report the PRV upper bound: it must not fall below the (tight) PLD value
    assert ours >= ref * (1 - 1e-3)
    # and PRV is tighter than RDP
    assert ours < epsilon_for(sigma, q, steps, delta, accountant="rdp")


def test_prv_matches_prv_accountant_stack_notes():
    import prv_accountant as pa

    sigma, q, steps, delta = SETTINGS[0]
    ours = epsilon_for(sigma, q, steps, delta, accountant="prv")
    ref = pa.PRVAccountant(
        prvs=[pa.PoissonSubsampledGaussianMechanism(noise_multiplier=sigma, sampling_probability=q)],
        max_self_compositions=[steps],
        eps_error=0.01,
        delta_error=delta / 1000,
    )
    lower, estimate, upper = ref.compute_epsilon(delta=delta, num_self_compositions=[steps])
    assert ours == pytest.approx(estimate, rel=0.01)
    assert lower <= ours <= upper + 1e-4  # same method, two code bases: agree to ~2e-6
    assert ours == pytest.approx(6.198, abs=2e-3)  # STACK-NOTES


@pytest.mark.parametrize("kind", ["rdp", "prv"])
def test_heterogeneous_history_matches_independent(kind):
    segments = [(1.0, 0.01, 3_000), (2.0, 0.02, 2_000)]
    a = Accountant(kind)
    for sigma, q, steps in segments:
        a.step(sigma, q, n=steps)
    ref = _dpa_rdp(segments, 1e-5) if kind == "rdp" else _dpa_pld(segments, 1e-5)
    assert a.epsilon(1e-5) == pytest.approx(ref, rel=0.01)


@pytest.mark.parametrize("kind", ["rdp", "prv"])
def test_epsilon_monotone(kind):
    by_sigma = [epsilon_for(s, 0.01, 2_000, 1e-5, kind) for s in (0.7, 1.0, 1.5, 3.0)]
    assert all(a > b for a, b in zip(by_sigma, by_sigma[1:]))
    by_steps = [epsilon_for(1.0, 0.01, t, 1e-5, kind) for t in (100, 1_000, 4_000)]
    assert all(a < b for a, b in zip(by_steps, by_steps[1:]))
    by_q = [epsilon_for(1.0, q, 1_000, 1e-5, kind) for q in (0.005, 0.01, 0.05)]
    assert all(a < b for a, b in zip(by_q, by_q[1:]))


def test_zero_steps_spend_nothing():
    assert epsilon_for(1.0, 0.01, 0, 1e-5, "prv") == 0.0
    assert epsilon_for(1.0, 0.01, 0, 1e-5, "rdp") == 0.0
    assert Accountant().epsilon(1e-5) == 0.0


def test_epsilon_is_python_float():
    assert type(epsilon_for(1.0, 0.01, 100, 1e-5, "prv")) is float
    assert type(epsilon_for(1.0, 0.01, 100, 1e-5, "rdp")) is float


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        (dict(noise_multiplier=0.0), "noise_multiplier"),
        (dict(noise_multiplier=-1.0), "noise_multiplier"),
        (dict(noise_multiplier=math.inf), "noise_multiplier"),
        (dict(sample_rate=0.0), "sample_rate"),
        (dict(sample_rate=1.5), "sample_rate"),
        (dict(steps=-1), "steps"),
        (dict(steps=2.5), "steps"),
        (dict(delta=0.0), "delta"),
        (dict(delta=1.0), "delta"),
        (dict(accountant="gdp"), "gdp"),
        (dict(accountant="moments"), "accountant"),
    ],
)
def test_epsilon_for_rejects_bad_input(kwargs, fragment):
    args = dict(noise_multiplier=1.0, sample_rate=0.01, steps=100, delta=1e-5, accountant="rdp")
    args.update(kwargs)
    with pytest.raises(PrivacyError, match=fragment):
        epsilon_for(**args)


# ------------------------------------------------------------------------------------------------
# noise calibration
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rdp", "prv"])
@pytest.mark.parametrize("target", [1.0, 10.0])
def test_calibrate_hits_target_within_tolerance(kind, target):
    q, steps, delta = 0.01, 10_000, 1e-5
    sigma = calibrate_noise(target, delta, q, steps, kind)
    eps = epsilon_for(sigma, q, steps, delta, kind)
    assert (1 - acc_mod.CALIBRATION_REL_TOL) * target <= eps <= target
    # STACK-NOTES: Opacus get_noise_multiplier gives rdp 4.14 / prv 3.87 (eps 1), 0.83 / 0.80 (eps 10)
    # (rounded to 2 decimals). Opacus stops once epsilon is within 0.01 (absolute) below the target,
    # so its sigma is at or above the smallest one; ours is tighter (0.5% relative) but close.
    expected = {("rdp", 1.0): 4.14, ("prv", 1.0): 3.87, ("rdp", 10.0): 0.83, ("prv", 10.0): 0.80}
    ref = expected[(kind, target)]
    assert ref * 0.98 <= sigma <= ref + 0.005


@pytest.mark.parametrize(
    "q,steps,target,delta",
    [(0.001, 1_000, 2.0, 1e-5), (0.1, 100, 4.0, 1e-6), (1.0, 1, 1.0, 1e-5), (0.02, 500, 0.5, 1e-5)],
)
def test_calibrate_rdp_other_settings(q, steps, target, delta):
    sigma = calibrate_noise(target, delta, q, steps, "rdp")
    eps = epsilon_for(sigma, q, steps, delta, "rdp")
    assert (1 - acc_mod.CALIBRATION_REL_TOL) * target <= eps <= target
    # slightly less noise would exceed the budget: sigma is (near) the smallest admissible
    assert epsilon_for(sigma * 0.99, q, steps, delta, "rdp") > target


@pytest.mark.filterwarnings("ignore:Optimal order is the:UserWarning")
def test_calibrate_not_worse_than_opacus_rdp():
    from opacus.accountants.utils import get_noise_multiplier

    ours = calibrate_noise(3.0, 1e-5, 0.01, 5_000, "rdp")
    theirs = get_noise_multiplier(
        target_epsilon=3.0, target_delta=1e-5, sample_rate=0.01, steps=5_000, accountant="rdp"
    )
    # Opacus's bisection stops within 0.01 absolute epsilon; ours within 0.5% (relative)
    assert ours <= theirs * 1.005


@pytest.mark.parametrize("kind", ["rdp", "prv"])
def test_calibrate_monotone_in_target(kind):
    targets = [0.5, 1.0, 2.0, 4.0, 8.0] if kind == "rdp" else [1.0, 3.0, 8.0]
    sigmas = [calibrate_noise(t, 1e-5, 0.01, 2_000, kind) for t in targets]
    assert all(a > b for a, b in zip(sigmas, sigmas[1:]))
    # more steps need more noise for the same target
    assert calibrate_noise(2.0, 1e-5, 0.01, 4_000, kind) > calibrate_noise(2.0, 1e-5, 0.01, 1_000, kind)


def test_calibrate_prv_is_fast(monkeypatch):
    """Opacus's own PRV calibration takes ~36 s here; ours needs a handful of PRV evaluations."""
    acc_mod._epsilon_history.cache_clear()
    calls = []
    real = acc_mod._prv_epsilon
    monkeypatch.setattr(acc_mod, "_prv_epsilon", lambda h, d: calls.append(h) or real(h, d))
    t0 = time.perf_counter()
    sigma = calibrate_noise(8.0, 1e-5, 0.01, 10_000, "prv")
    elapsed = time.perf_counter() - t0
    assert len(calls) <= 4, calls
    assert elapsed < 15.0  # measured ~2.3 s on 2 cores; generous for loaded CI machines
    assert 0.995 * 8.0 <= epsilon_for(sigma, 0.01, 10_000, 1e-5, "prv") <= 8.0


def test_calibrate_rdp_is_fast():
    acc_mod._epsilon_history.cache_clear()
    acc_mod._rdp_one_step.cache_clear()
    t0 = time.perf_counter()
    calibrate_noise(8.0, 1e-5, 0.01, 10_000, "rdp")
    assert time.perf_counter() - t0 < 3.0  # measured ~0.2 s


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan])
def test_calibrate_refuses_nonpositive_epsilon(bad):
    with pytest.raises(PrivacyError, match="target_epsilon"):
        calibrate_noise(bad, 1e-5, 0.01, 1_000, "rdp")


def test_calibrate_refuses_bad_delta_inf_eps_and_zero_steps():
    with pytest.raises(PrivacyError, match="delta"):
        calibrate_noise(1.0, 0.0, 0.01, 1_000, "rdp")
    with pytest.raises(PrivacyError, match="delta"):
        calibrate_noise(1.0, -1e-5, 0.01, 1_000, "rdp")
    with pytest.raises(PrivacyError, match="non_private"):
        calibrate_noise(math.inf, 1e-5, 0.01, 1_000, "rdp")
    with pytest.raises(PrivacyError, match="steps = 0"):
        calibrate_noise(1.0, 1e-5, 0.01, 0, "rdp")


def test_calibrate_unreachable_budget():
    with pytest.raises(PrivacyError, match="too small"):
        calibrate_noise(1e-7, 1e-5, 1.0, 1_000_000, "rdp")


# ------------------------------------------------------------------------------------------------
# delta policy
# ------------------------------------------------------------------------------------------------


def test_check_delta_refuses_delta_at_or_above_one_over_n():
    with pytest.raises(PrivacyError, match=r"1/n") as err:
        check_delta(1e-3, 1_000)  # exactly 1/n
    assert "catastrophic" in str(err.value) and "default_delta" in str(err.value)
    with pytest.raises(PrivacyError, match=r"1/n"):
        check_delta(0.01, 1_000)
    check_delta(9.9e-4, 1_000)  # below 1/n: accepted
    check_delta(default_delta(1_000), 1_000)


def test_check_delta_rejects_nonsense():
    with pytest.raises(PrivacyError):
        check_delta(0.0, 1_000)
    with pytest.raises(PrivacyError):
        check_delta(1e-5, 0)


@pytest.mark.parametrize("n", [1, 10, 1_000, 10_000, 100_000, 10**7])
def test_default_delta_well_below_one_over_n(n):
    d = default_delta(n)
    assert d <= 1e-5
    assert d * n <= 0.1 + 1e-12
    check_delta(d, n)


# ------------------------------------------------------------------------------------------------
# stateful accountant
# ------------------------------------------------------------------------------------------------


def _only_plain_python(x) -> bool:
    if isinstance(x, dict):
        return all(type(k) is str and _only_plain_python(v) for k, v in x.items())
    if isinstance(x, list):
        return all(_only_plain_python(v) for v in x)
    return type(x) in (str, int, float)


@pytest.mark.parametrize("kind", ["rdp", "prv"])
def test_state_dict_weights_only_round_trip_and_resume(kind, tmp_path):
    a = Accountant(kind)
    # numpy inputs must not leak numpy scalars into the state (weights_only would refuse them)
    a.step(np.float64(1.0), np.float64(0.01), n=np.int64(3_000))
    state = a.state_dict()
    assert _only_plain_python(state)
    path = tmp_path / "ckpt.pt"
    torch.save({"accountant": state, "step": 3_000}, path)
    loaded = torch.load(path, weights_only=True)["accountant"]
    assert loaded == state

    resumed = Accountant(kind)
    resumed.load_state_dict(loaded)
    assert resumed.history == a.history
    resumed.step(1.0, 0.01, n=7_000)  # continue training
    assert resumed.history == [(1.0, 0.01, 10_000)]  # one segment: no reset, no double count
    assert resumed.epsilon(1e-5) == epsilon_for(1.0, 0.01, 10_000, 1e-5, kind)

    # loading the same state twice does not double count
    resumed.load_state_dict(loaded)
    resumed.load_state_dict(loaded)
    assert resumed.steps == 3_000


def test_two_segments_equal_one_combined_run_heterogeneous():
    one = Accountant("rdp")
    one.step(1.0, 0.01, n=1_000)
    one.step(2.0, 0.01, n=500)
    buf = io.BytesIO()
    first = Accountant("rdp")
    first.step(1.0, 0.01, n=1_000)
    torch.save(first.state_dict(), buf)
    buf.seek(0)
    second = Accountant.from_state_dict(torch.load(buf, weights_only=True))
    second.step(2.0, 0.01, n=500)
    assert second.history == one.history
    assert second.epsilon(1e-5) == one.epsilon(1e-5)
    assert second.epsilon(1e-5) > first.epsilon(1e-5)


def test_step_merges_and_validates():
    a = Accountant("rdp")
    for _ in range(10):
        a.step(1.0, 0.01)
    a.step(1.0, 0.01, n=0)
    assert a.history == [(1.0, 0.01, 10)] and a.steps == 10
    with pytest.raises(PrivacyError):
        a.step(0.0, 0.01)
    with pytest.raises(PrivacyError):
        a.step(1.0, 0.01, n=-1)
    assert a.steps == 10


def test_load_state_dict_refuses_bad_state():
    a = Accountant("prv")
    good = Accountant("rdp").state_dict()
    with pytest.raises(PrivacyError, match="Accountant\\('rdp'\\)"):
        a.load_state_dict(good)
    with pytest.raises(PrivacyError, match="missing"):
        a.load_state_dict({"kind": "prv"})
    with pytest.raises(PrivacyError, match="triple"):
        a.load_state_dict({"version": 1, "kind": "prv", "history": [[1.0, 0.01]]})
    with pytest.raises(PrivacyError, match="noise_multiplier"):
        a.load_state_dict({"version": 1, "kind": "prv", "history": [[-1.0, 0.01, 5]]})
    with pytest.raises(PrivacyError, match="version"):
        a.load_state_dict({"version": 99, "kind": "prv", "history": []})
    assert a.steps == 0


def test_would_exceed():
    a = Accountant("rdp")
    a.step(1.0, 0.01, n=9_000)
    target = epsilon_for(1.0, 0.01, 10_000, 1e-5, "rdp")
    assert not a.would_exceed(target, 1e-5, 1_000, 1.0, 0.01)
    assert a.would_exceed(target, 1e-5, 1_001, 1.0, 0.01)
    assert not a.would_exceed(target, 1e-5, 0, 1.0, 0.01)
    assert a.steps == 9_000  # a query, not a step
    with pytest.raises(PrivacyError):
        a.would_exceed(0.0, 1e-5, 1, 1.0, 0.01)


# ------------------------------------------------------------------------------------------------
# pure epsilon of a history (what the Accountant delegates to)
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rdp", "prv"])
def test_epsilon_of_history_is_what_the_accountant_reports(kind):
    segments = [(1.0, 0.01, 3_000), (2.0, 0.02, 0), (2.0, 0.02, 2_000)]
    a = Accountant(kind)
    for sigma, q, steps in segments:
        a.step(sigma, q, n=steps)
    assert epsilon_of_history(segments, 1e-5, kind) == a.epsilon(1e-5)
    assert epsilon_of_history([], 1e-5, kind) == 0.0
    assert epsilon_of_history([(1.0, 0.01, 10_000)], 1e-5, kind) == epsilon_for(1.0, 0.01, 10_000, 1e-5, kind)


@pytest.mark.parametrize(
    "history, fragment",
    [
        ([(1.0, 0.01)], "triple"),
        (["abc"], "triple"),
        ([(0.0, 0.01, 5)], "noise_multiplier must be a finite number > 0"),
        ([(1.0, 1.5, 5)], "sample_rate must satisfy 0 < q <= 1"),
        ([(1.0, 0.01, -1)], "steps must be >= 0"),
        ([(1.0, 0.01, 2.5)], "steps must be an integer"),
    ],
)
def test_epsilon_of_history_rejects_bad_segments(history, fragment):
    with pytest.raises(PrivacyError, match=fragment):
        epsilon_of_history(history, 1e-5, "rdp")


def test_argument_errors_name_the_argument_and_the_fix():
    with pytest.raises(PrivacyError, match=r"delta must satisfy 0 < delta < 1, got 0\.0: .*default_delta"):
        epsilon_for(1.0, 0.01, 10, 0.0)
    with pytest.raises(PrivacyError, match=r"target_epsilon must be > 0, got nan"):
        calibrate_noise(math.nan, 1e-5, 0.01, 10)
    with pytest.raises(PrivacyError, match=r"target_epsilon is inf"):
        calibrate_noise(math.inf, 1e-5, 0.01, 10)
    with pytest.raises(PrivacyError, match=r"noise_multiplier must be a real number, got True"):
        epsilon_for(True, 0.01, 10, 1e-5)
    with pytest.raises(PrivacyError, match=r"n_records must be >= 1"):
        default_delta(0)


# ------------------------------------------------------------------------------------------------
# a full-data Gaussian (q = 1, one step: the DP label histogram) composed with DP-SGD
# ------------------------------------------------------------------------------------------------


def test_q_one_gaussian_matches_dp_accounting():
    """q = 1.0 is the plain Gaussian mechanism: Opacus RDP (alpha / 2 sigma^2) equals dp_accounting's
    RDP; the PRV upper bound is within eps_error (0.01) + 1% of the tight PLD value, never below it."""
    for sigma in (5.0, 70.0):
        plain = dp_accounting.GaussianDpEvent(sigma)
        a = rdp.RdpAccountant(orders=list(RDP_ORDERS))
        a.compose(plain)
        assert epsilon_for(sigma, 1.0, 1, 1e-5, "rdp") == pytest.approx(a.get_epsilon(1e-5), rel=1e-6)
        b = pld.PLDAccountant()
        b.compose(plain)
        tight = b.get_epsilon(1e-5)
        assert tight * (1 - 1e-3) <= epsilon_for(sigma, 1.0, 1, 1e-5, "prv") <= tight * 1.01 + 0.01


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_calibrate_with_a_prior_reaches_the_target_for_the_whole_history(accountant):
    prior = [(30.0, 1.0, 1)]
    sigma = calibrate_noise(2.0, 1e-5, 0.01, 2_000, accountant, prior=prior)
    total = epsilon_of_history(prior + [(sigma, 0.01, 2_000)], 1e-5, accountant)
    assert 0.995 * 2.0 <= total <= 2.0
    assert sigma > calibrate_noise(2.0, 1e-5, 0.01, 2_000, accountant)  # the prior is paid for


def test_calibrate_refuses_a_prior_that_spends_the_target():
    with pytest.raises(PrivacyError, match="alone spend epsilon"):
        calibrate_noise(0.1, 1e-5, 0.01, 100, "rdp", prior=[(5.0, 1.0, 1)])
    with pytest.raises(PrivacyError, match="triple"):
        calibrate_noise(1.0, 1e-5, 0.01, 100, "rdp", prior=[(5.0, 1.0)])
