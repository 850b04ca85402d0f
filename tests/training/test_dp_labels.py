"""DP label frequencies: the Gaussian label histogram, its accounting, its noise source, resume."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest
import torch

from toy import fresh, toy_data
from trustgen.errors import ConfigError, PrivacyError
from trustgen.privacy.accounting import RDP_ORDERS, calibrate_noise, epsilon_of_history
from trustgen.privacy.config import DEFAULT_LABEL_BUDGET, PrivacyConfig
from trustgen.privacy.label_histogram import LABEL_NOISE_ADDRESS, noisy_prior, private_label_prior
from trustgen.privacy.plan import plan_privacy
from trustgen.privacy.secure_random import SecureRandom, key_from_seed
from trustgen.training import TrainConfig, Trainer


def fit(accountant="prv", budget=0.1, seed=3, steps=40, n=200, **kw):
    x, y = toy_data(n)
    t = Trainer(fresh("vae"), TrainConfig(steps=steps, batch_size=20, progress=False, **kw),
                privacy=PrivacyConfig(epsilon=3.0, delta=1e-4, accountant=accountant, label_budget=budget,
                                      secret_seed=seed))
    return t, t.fit(x, y)


@pytest.mark.parametrize("accountant", ["prv", "rdp"])
def test_combined_epsilon_matches_dp_accounting(accountant):
    """The reported epsilon, re-derived with Google's dp_accounting (another code base) as the
    composition GaussianDpEvent(sigma_label) + PoissonSampled(q, Gaussian(sigma)) x T.
    Tolerance: PRV reports its upper bound (estimate + eps_error 0.01, absolute) against PLD's
    tight value, so PLD <= ours <= PLD + 0.02; RDP is the same maths: 1e-6 relative."""
    dp_accounting = pytest.importorskip("dp_accounting")
    _, res = fit(accountant)
    r = res.privacy
    assert r.steps == 40 and r.sample_rate == 0.1 and r.label_noise_multiplier > 0
    a = dp_accounting.pld.PLDAccountant() if accountant == "prv" else dp_accounting.rdp.RdpAccountant(
        orders=list(RDP_ORDERS))
    a.compose(dp_accounting.GaussianDpEvent(r.label_noise_multiplier))
    a.compose(dp_accounting.PoissonSampledDpEvent(r.sample_rate, dp_accounting.GaussianDpEvent(r.noise_multiplier)),
              r.steps)
    independent = a.get_epsilon(r.delta)
    if accountant == "prv":
        assert independent * (1 - 1e-3) <= r.epsilon <= independent + 0.02
    else:
        assert r.epsilon == pytest.approx(independent, rel=1e-6)
    # The total reaches the target, never more; the histogram alone costs its share.
    assert 0.995 * 3.0 <= r.epsilon <= 3.0
    assert 0.995 * 0.3 <= r.label_epsilon <= 0.3 and r.label_budget == 0.1


def test_report_keeps_dp_sgd_fields_apart_from_the_histogram():
    t, res = fit("rdp")
    r = res.privacy
    assert t.accountant.history == [(r.label_noise_multiplier, 1.0, 1), (r.noise_multiplier, 0.1, 40)]
    assert r.steps == 40 and r.epochs == pytest.approx(4.0) and r.sample_rate == 0.1
    assert not any("changed during training" in c for c in r.caveats)
    assert r.epsilon == epsilon_of_history(t.accountant.history, r.delta, "rdp")
    assert "Label frequencies: a Gaussian histogram" in r.summary() and "RDP composition" in r.summary()


def test_the_budget_check_counts_the_label_histogram(monkeypatch):
    """A plan whose DP-SGD noise was calibrated as if the histogram were free reaches the target
    with its steps alone; adding the histogram must make the trainer refuse before any step."""
    import dataclasses

    from trustgen.training import trainer as trainer_mod

    def overspending(config, **kw):
        plan = plan_privacy(config, **kw)
        free = calibrate_noise(config.epsilon, plan.delta, plan.sample_rate, plan.steps, config.accountant)
        return dataclasses.replace(plan, noise_multiplier=free)

    monkeypatch.setattr(trainer_mod, "plan_privacy", overspending)
    with pytest.raises(PrivacyError, match="would exceed"):
        fit("rdp")


def test_the_noise_comes_from_the_secret_key_only():
    """Same key -> the same prior, whatever torch's global generator holds, which stays untouched;
    other keys -> other priors; and the prior is exactly counts + sigma * (the key's draw at the
    label address), clipped and normalised."""
    y = torch.tensor([0] * 300 + [1] * 100)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a = private_label_prior(y, 2, 40.0, SecureRandom(key_from_seed(1)))
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(12345)
    assert private_label_prior(y, 2, 40.0, SecureRandom(key_from_seed(1))) == a
    others = {tuple(private_label_prior(y, 2, 40.0, SecureRandom(key_from_seed(s)))) for s in range(2, 7)}
    assert tuple(a) not in others and len(others) == 5
    z = SecureRandom(key_from_seed(1)).normal((2,), *LABEL_NOISE_ADDRESS).double()
    noisy = (torch.tensor([300.0, 100.0], dtype=torch.float64) + 40.0 * z).clamp(min=0)
    assert a == pytest.approx((noisy / noisy.sum()).tolist(), abs=1e-15)


def test_trainer_prior_depends_on_the_secret_seed_and_is_reproducible():
    _, a = fit("rdp", seed=5, steps=1)
    _, b = fit("rdp", seed=5, steps=1)
    _, c = fit("rdp", seed=6, steps=1)
    assert a.label_prior == b.label_prior and a.label_prior != c.label_prior
    assert sum(a.label_prior) == pytest.approx(1.0)


def test_no_count_above_zero_falls_back_to_uniform_and_negatives_are_clipped():
    rng = SecureRandom(key_from_seed(0))
    assert noisy_prior(torch.tensor([0.0, 0.0, 0.0]), 1e-9, rng) == [1 / 3] * 3
    # A class of one record under large noise: some keys push it below 0, and it gets probability 0.
    zeros = [noisy_prior(torch.tensor([1000.0, 1.0]), 50.0, SecureRandom(key_from_seed(s)))[1] for s in range(20)]
    assert 0.0 in zeros and all(p >= 0 for p in zeros)


def test_bad_labels_are_refused():
    from trustgen.errors import DataError

    with pytest.raises(DataError, match="lie in"):
        private_label_prior(torch.tensor([0, 2]), 2, 1.0, SecureRandom(key_from_seed(0)))


def test_a_caller_prior_and_a_label_budget_conflict():
    x, y = toy_data(100)
    t = Trainer(fresh("gan", r1_gamma=0.0), TrainConfig(steps=1, batch_size=20, progress=False),
                privacy=PrivacyConfig(epsilon=3.0, delta=1e-4))
    with pytest.raises(ConfigError, match="label_prior=None"):
        t.fit(x, y, label_prior=torch.tensor([0.5, 0.5]))


def test_budget_zero_or_no_labels_spends_nothing_on_labels():
    t, res = fit("rdp", budget=0.0, steps=3)
    assert res.label_prior is None and res.privacy.label_noise_multiplier == 0.0 and len(t.accountant.history) == 1
    from trustgen.models import build_model
    from trustgen.models.nets import DataSpec

    x, _ = toy_data(200)
    unconditional = build_model("vae", DataSpec("tabular", 4, 0, (("numeric", 0, 1), ("categorical", 1, 3))),
                                {"hidden": 16})
    t = Trainer(unconditional, TrainConfig(steps=3, batch_size=20, progress=False),
                privacy=PrivacyConfig(epsilon=3.0, delta=1e-4, accountant="rdp"))
    r = t.fit(x, None)
    assert r.label_prior is None and r.privacy.label_epsilon == 0.0 and t.accountant.history[0][1] == 0.1


@pytest.mark.parametrize("family", ["vae", "gan"])
def test_resume_counts_the_label_histogram_once(family, tmp_path):
    """Interrupted at step 9 (checkpoint at 8) and resumed: the accountant history, the epsilon,
    the prior and the weights equal those of a run that never stopped."""
    x, y = toy_data(200)
    cfg = dict(steps=12, batch_size=20, seed=2, checkpoint_every=4, progress=False)
    priv = PrivacyConfig(epsilon=5.0, delta=1e-4, accountant="rdp", secret_seed=11)

    def model():
        return fresh(family, r1_gamma=0.0) if family == "gan" else fresh(family)

    straight_model = model()
    straight_t = Trainer(straight_model, TrainConfig(**cfg), privacy=priv)
    straight = straight_t.fit(x, y)

    def kill(trainer, step, logs):
        if step == 9:
            raise KeyboardInterrupt

    ckpt = tmp_path / "ck.pt"
    with pytest.raises(KeyboardInterrupt):
        Trainer(model(), TrainConfig(**cfg), callbacks=(kill,), privacy=priv).fit(x, y, checkpoint=ckpt)
    saved = torch.load(ckpt, weights_only=True)["privacy"]["accountant"]["history"]
    assert saved[0][1:] == [1.0, 1] and sum(s[2] for s in saved) == 1 + 8
    resumed_model = model()
    resumed_t = Trainer(resumed_model, TrainConfig(**cfg), privacy=priv)
    resumed = resumed_t.fit(x, y, checkpoint=ckpt, resume=True)
    assert resumed_t.accountant.history == straight_t.accountant.history
    assert [s[1:] for s in resumed_t.accountant.history] == [(1.0, 1), (0.1, 12)]
    assert resumed.privacy.epsilon == straight.privacy.epsilon and resumed.privacy.steps == 12
    assert resumed.label_prior == straight.label_prior
    for a, b in zip(straight_model.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.equal(a, b)


def test_dp_positive_rate_is_within_the_bound_sigma_gives():
    """A 5% class on 4,000 rows at epsilon 1 (default share 0.05, PRV, delta 1e-5): the trainer's
    prior and the mechanism under 200 fixed keys (key_from_seed(0..199)).

    1. Bound: if both noise draws satisfy |z| <= t, the positive rate lies in
       [(c1 - sigma t) / (n + 2 sigma t), (c1 + sigma t) / (n - 2 sigma t)]. With
       t = Phi^-1(1 - 1e-8 / 4) each key breaks it with probability <= 1e-8, so the 201 checks
       fail by chance with probability <= 2.1e-6.
    2. The noise is really there (a mechanism without noise passes check 1): to first order
       p_hat - p = sigma (z1 (1 - p) - z0 p) / n, so sum of squared standardised errors over 200 keys
       is ~ chi^2(200); 0.6 * 200 < it < 1.5 * 200 fails by chance with probability < 1e-5
       (+-5% slack for the linearisation and the rare clip at 0).
    3. No bias: the mean rate of the 200 keys is within 4.5 standard errors of p (false-failure
       probability 7e-6; the ratio's second-order bias, ~3e-5, is 40x smaller than a standard error)."""
    n, c1 = 4_000, 200
    y = torch.tensor([1] * c1 + [0] * (n - c1))
    x = torch.zeros(n, 4)
    x[:, 1] = 1
    t = Trainer(fresh("vae"), TrainConfig(steps=1, batch_size=40, progress=False),
                privacy=PrivacyConfig(epsilon=1.0, secret_seed=0))
    res = t.fit(x, y)
    sigma = t.plan.label_noise_multiplier
    assert sigma == res.privacy.label_noise_multiplier and 10 < sigma < 30  # the default share at epsilon 1: about 17
    tail = NormalDist().inv_cdf(1 - 1e-8 / 4)
    lo, hi = (c1 - sigma * tail) / (n + 2 * sigma * tail), (c1 + sigma * tail) / (n - 2 * sigma * tail)
    rates = [res.label_prior[1]] + [private_label_prior(y, 2, sigma, SecureRandom(key_from_seed(s)))[1]
                                    for s in range(200)]
    assert all(lo <= r <= hi for r in rates), (lo, hi, min(rates), max(rates))
    p = c1 / n
    sd = sigma * math.sqrt((1 - p) ** 2 + p ** 2) / n
    chi2 = sum(((r - p) / sd) ** 2 for r in rates[1:])
    assert 0.6 * 200 < chi2 < 1.5 * 200, chi2
    assert abs(sum(rates[1:]) / 200 - p) < 4.5 * sd / math.sqrt(200)


# -- the command line -------------------------------------------------------------------------------

# The share's range is [0, 1): 1 is refused by the parser as it says (it used to pass a stated [0, 1]).
BAD_BUDGETS = [("1", "--label-budget: must be in [0, 1), got 1"), ("1.5", "--label-budget: must be in [0, 1)"),
               ("-0.1", "--label-budget: must be in"), ("nan", "--label-budget: must be in"),
               ("inf", "--label-budget: must be in"), ("abc", "--label-budget: expected a number")]


@pytest.mark.parametrize("command", ["train", "audit"])
@pytest.mark.parametrize("value, words", BAD_BUDGETS + [(None, "need --epsilon")])
def test_cli_refuses_a_bad_label_budget_before_any_work(command, value, words, tmp_path, capsys, monkeypatch):
    """Exit 2 with a one-line reason; no data is read and no run directory is made."""
    from trustgen import pipeline  # imported first: it binds load_data at import
    from trustgen.cli import main
    from trustgen.data import loaders

    def no_work(*a, **k):
        raise AssertionError("data was loaded before the label budget was checked")

    monkeypatch.setattr(loaders, "load_data", no_work)  # what `audit` calls
    monkeypatch.setattr(pipeline, "load_data", no_work)  # what `train` calls
    args = [command, "--data", "breast_cancer", "--model", "vae", "--out", str(tmp_path / "r")]
    args += ["--label-budget", "0.1"] if value is None else ["--epsilon", "1", "--label-budget", value]
    try:
        code = main(args)
    except SystemExit as e:  # argparse's own errors (a non-number) exit from the parser
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and words in err and err.strip().count("\n") == 0, err
    assert not (tmp_path / "r").exists()


def test_cli_label_budget_reaches_the_report_and_zero_keeps_uniform_labels(tmp_path, capsys):
    import json

    from trustgen.cli import main
    from trustgen.run import Run

    base = ["train", "--data", "breast_cancer", "--model", "vae", "--steps", "2", "--batch-size", "64",
            "--epsilon", "2", "--accountant", "rdp", "--option", "hidden=8", "--no-progress", "--json"]
    assert main(base + ["--label-budget", "0.2", "--out", str(tmp_path / "a")]) == 0
    r = Run.load(tmp_path / "a")
    assert r.privacy.label_budget == 0.2 and 0.995 * 0.4 <= r.privacy.label_epsilon <= 0.4
    assert r.label_prior != [0.5, 0.5] and r.privacy.epsilon <= 2.0
    assert main(base + ["--label-budget", "0", "--out", str(tmp_path / "b")]) == 0
    r = Run.load(tmp_path / "b")
    assert r.label_prior == [0.5, 0.5] and r.privacy.label_noise_multiplier == 0.0
    assert any("sampled uniformly" in c for c in r.caveats)
    capsys.readouterr()
    assert main(["privacy", str(tmp_path / "a"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["label_budget"] == 0.2


def test_the_benchmark_runs_in_smoke_mode(tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    r = subprocess.run([sys.executable, str(root / "benchmarks" / "dp_labels.py"), "--smoke"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = {d["label_budget"]: d for d in map(json.loads, r.stdout.splitlines()) if d.get("summary")}
    assert set(summary) == {DEFAULT_LABEL_BUDGET, 0.0}
    assert summary[0.0]["mean_abs_error_pp"] > 40  # the uniform prior on a ~4% class
