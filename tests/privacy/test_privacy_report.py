"""PrivacyReport: validation, exact JSON round trip (inf included), atomic writes, summary text."""

from __future__ import annotations

import json
import math
import os

import pytest

from trustgen.errors import PrivacyError
from trustgen.privacy.accountant import Accountant
from trustgen.privacy.accounting import epsilon_for
from trustgen.privacy.report import PrivacyReport


def _report(**overrides) -> PrivacyReport:
    fields = dict(
        accountant="prv",
        epsilon=6.198043871978805,
        delta=1e-5,
        target_epsilon=8.0,
        noise_multiplier=1.0,
        sample_rate=0.01,
        steps=10_000,
        epochs=100.0,
        max_grad_norm=1.0,
        sampling_scheme="poisson",
        preprocessing_epsilon=0.1,
        private_modules=["encoder", "decoder"],
        caveats=["Canary audit: see audit.json", "unicode ok: ε ≤ 8"],
    )
    fields.update(overrides)
    return PrivacyReport(**fields)


def _strict_json(text: str):
    def reject(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=reject)


def test_json_round_trip_exact(tmp_path):
    r = _report(epsilon=0.1 + 0.2, sample_rate=1 / 3)  # floats that need all 17 digits
    path = r.to_json(tmp_path / "privacy.json")
    back = PrivacyReport.from_json(path)
    assert back == r
    assert back.epsilon == 0.1 + 0.2 and back.sample_rate == 1 / 3
    assert type(back.steps) is int
    data = _strict_json(path.read_text())
    assert data["format"] == "trustgen-privacy-report" and data["version"] == 1
    assert data["mechanism"] == "DP-SGD"


def test_non_private_round_trip_encodes_inf_safely(tmp_path):
    r = PrivacyReport.non_private(steps=500, epochs=5.0, sample_rate=0.02)
    assert r.epsilon == math.inf and not r.is_private
    path = r.to_json(tmp_path / "privacy.json")
    data = _strict_json(path.read_text())  # strict JSON: no Infinity / NaN tokens
    assert data["epsilon"] == "inf"
    back = PrivacyReport.from_json(path)
    assert back == r and back.epsilon == math.inf


def test_non_private_preprocessing_inf_round_trip(tmp_path):
    r = _report(preprocessing_epsilon=math.inf)
    assert not r.is_private
    assert PrivacyReport.from_json(r.to_json(tmp_path / "p.json")) == r


def test_atomic_write_no_partial_file_when_serialisation_fails(tmp_path):
    r = _report()
    r.caveats.append(object())  # not serialisable (bypasses __post_init__ by mutation)
    target = tmp_path / "privacy.json"
    with pytest.raises(PrivacyError, match="caveats"):
        r.to_json(target)
    assert not target.exists()
    assert os.listdir(tmp_path) == []


def test_atomic_write_keeps_old_file_when_replace_fails(tmp_path, monkeypatch):
    target = tmp_path / "privacy.json"
    old = _report(epsilon=1.0)
    old.to_json(target)
    before = target.read_bytes()

    def boom(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="simulated"):
        _report(epsilon=2.0).to_json(target)
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["privacy.json"]  # temp file cleaned up
    assert PrivacyReport.from_json(target).epsilon == 1.0


def test_written_through_trustgen_io_readable_by_all(tmp_path, monkeypatch):
    import trustgen.privacy.report as report_mod

    calls = []
    real = report_mod.atomic_write_text
    monkeypatch.setattr(report_mod, "atomic_write_text", lambda p, t: calls.append(p) or real(p, t))
    path = _report().to_json(tmp_path / "privacy.json")
    assert calls == [path]
    umask = os.umask(0)
    os.umask(umask)
    assert (path.stat().st_mode & 0o777) == 0o666 & ~umask  # a released file: as the user's umask says


def test_to_json_missing_directory(tmp_path):
    with pytest.raises(PrivacyError, match="does not exist"):
        _report().to_json(tmp_path / "nope" / "privacy.json")


@pytest.mark.parametrize(
    "mutate,fragment",
    [
        (lambda d: d.pop("epsilon"), "missing"),
        (lambda d: d.update(extra=1), "unknown"),
        (lambda d: d.update(format="something-else"), "format"),
        (lambda d: d.update(version=2), "version"),
        (lambda d: d.update(epsilon="lots"), "epsilon"),
        (lambda d: d.update(epsilon=None), "epsilon"),
        (lambda d: d.update(epsilon=10 ** 400), "epsilon must be a number"),  # beyond a float (the fuzzer's)
        (lambda d: d.update(steps=1.5), "steps"),
        (lambda d: d.update(delta=0.0), "delta"),
        (lambda d: d.update(sampling_scheme="random"), "sampling_scheme"),
        (lambda d: d.update(caveats="one string"), "caveats"),
        (lambda d: d.update(accountant="gdp"), "accountant"),
    ],
)
def test_from_json_rejects_malformed(tmp_path, mutate, fragment):
    data = _report().to_dict()
    mutate(data)
    path = tmp_path / "privacy.json"
    path.write_text(json.dumps(data))
    with pytest.raises(PrivacyError, match=fragment):
        PrivacyReport.from_json(path)


def test_from_json_truncated_and_missing(tmp_path):
    path = tmp_path / "privacy.json"
    _report().to_json(path)
    path.write_text(path.read_text()[:40])
    with pytest.raises(PrivacyError, match="not valid JSON"):
        PrivacyReport.from_json(path)
    path.write_text("[1, 2]")
    with pytest.raises(PrivacyError, match="JSON object"):
        PrivacyReport.from_json(path)
    with pytest.raises(PrivacyError, match="does not exist"):
        PrivacyReport.from_json(tmp_path / "missing.json")


def test_validation_is_consistent():
    with pytest.raises(PrivacyError, match="non_private"):
        _report(epsilon=math.inf)
    with pytest.raises(PrivacyError, match="epsilon = inf"):
        _report(accountant="none")
    with pytest.raises(PrivacyError, match="max_grad_norm"):
        _report(max_grad_norm=None)
    with pytest.raises(PrivacyError, match="noise_multiplier"):
        _report(noise_multiplier=0.0)
    with pytest.raises(PrivacyError, match="epsilon"):
        _report(epsilon=-1.0)
    with pytest.raises(PrivacyError, match="epsilon"):
        _report(epsilon=math.nan)


def test_summary_states_guarantee_and_limits():
    text = _report().summary()
    assert "6.298" in text  # total epsilon = 6.198 + 0.1 preprocessing
    assert "1e-05" in text
    assert "one record (add/remove)" in text
    assert "Does NOT cover" in text and "lower bound" in text
    assert "encoder, decoder" in text
    assert "within" in text
    assert "Canary audit" in text
    assert "WARNING" not in text
    shuffled = _report(sampling_scheme="shuffle").summary()
    assert "WARNING" in shuffled and "Poisson" in shuffled
    over = _report(epsilon=9.0).summary()
    assert "EXCEEDS" in over


def test_non_private_summary_is_unmistakable():
    text = PrivacyReport.non_private(steps=10).summary()
    assert text.startswith("NO DIFFERENTIAL PRIVACY")
    assert "epsilon = inf" in text


def test_from_accountant():
    a = Accountant("rdp")
    a.step(1.0, 0.01, n=10_000)
    r = PrivacyReport.from_accountant(a, delta=1e-5, max_grad_norm=1.0, target_epsilon=8.0)
    assert r.epsilon == epsilon_for(1.0, 0.01, 10_000, 1e-5, "rdp")
    assert (r.steps, r.epochs, r.accountant) == (10_000, 100.0, "rdp")
    a.step(2.0, 0.02, n=100)
    r2 = PrivacyReport.from_accountant(a, delta=1e-5, max_grad_norm=1.0)
    assert r2.noise_multiplier == 1.0 and r2.sample_rate == 0.02
    assert any("changed during training" in c for c in r2.caveats)
    with pytest.raises(PrivacyError, match="no steps"):
        PrivacyReport.from_accountant(Accountant("rdp"), delta=1e-5, max_grad_norm=1.0)


# -- the DP label histogram ------------------------------------------------------------------------


def _labelled(**overrides) -> PrivacyReport:
    return _report(**{"label_budget": 0.0375, "label_epsilon": 0.3, "label_noise_multiplier": 16.0, **overrides})


def test_a_privacy_json_from_before_the_label_fields_still_reads(tmp_path):
    data = _report().to_dict()
    for name in ("label_budget", "label_epsilon", "label_noise_multiplier"):
        del data[name]
    path = tmp_path / "privacy.json"
    path.write_text(json.dumps(data))
    r = PrivacyReport.from_json(path)
    assert (r.label_budget, r.label_epsilon, r.label_noise_multiplier) == (0.0, 0.0, 0.0)
    assert r == _report() and "Label frequencies" not in r.summary()


def test_label_fields_round_trip_and_show_in_the_summary(tmp_path):
    r = _labelled()
    assert PrivacyReport.from_json(r.to_json(tmp_path / "privacy.json")) == r
    text = r.summary()
    line = next(ln for ln in text.splitlines() if ln.startswith("Label frequencies"))
    assert "noise multiplier 16" in line and "epsilon 0.3 alone" in line and "0.0375 of the target" in line
    assert "PRV composition" in line and "not a sum" in line
    # the label histogram does not touch the (pure-DP, additive) preprocessing line
    assert "preprocessing epsilon 0.1 (" in text and "basic composition" in text


def test_a_share_held_at_the_noise_floor_is_not_reported_as_spent():
    """A 0.9 share of epsilon 1000 would need noise below HISTOGRAM_SIGMA_MIN; the plan holds
    the noise there, so the histogram spends far less than 900. The summary must say what it
    spent, not echo the stated share (a review's find)."""
    from trustgen.privacy.accounting import epsilon_of_history
    from trustgen.privacy.plan import HISTOGRAM_SIGMA_MIN

    spent = epsilon_of_history([(HISTOGRAM_SIGMA_MIN, 1.0, 1)], 1e-5, "prv")
    assert spent < 0.5 * 900
    r = _labelled(target_epsilon=1000.0, epsilon=999.0, label_budget=0.9, label_epsilon=spent,
                  label_noise_multiplier=HISTOGRAM_SIGMA_MIN)
    line = next(ln for ln in r.summary().splitlines() if ln.startswith("Label frequencies"))
    assert "0.9 of the target" not in line and "below the stated share 0.9" in line
    assert f"{spent / 1000:.3g} of the target" in line


@pytest.mark.parametrize("overrides, fragment", [
    (dict(label_budget=1.0), "label_budget"),
    (dict(label_budget=-0.1), "label_budget"),
    (dict(label_epsilon=0.0), "both"),
    (dict(label_noise_multiplier=0.0), "both"),
    (dict(label_epsilon=math.inf), "label_epsilon"),
    (dict(label_epsilon=7.0), "exceeds epsilon"),
])
def test_label_fields_are_validated(overrides, fragment):
    with pytest.raises(PrivacyError, match=fragment):
        _labelled(**overrides)


def test_from_accountant_separates_the_label_segment():
    from trustgen.privacy.accounting import epsilon_of_history

    a = Accountant("rdp")
    a.step(20.0, 1.0)
    a.step(1.0, 0.01, n=1_000)
    r = PrivacyReport.from_accountant(a, delta=1e-5, max_grad_norm=1.0, label_noise_multiplier=20.0,
                                      label_budget=0.05)
    assert (r.steps, r.noise_multiplier, r.sample_rate, r.epochs) == (1_000, 1.0, 0.01, 10.0)
    assert not any("changed during training" in c for c in r.caveats)
    assert r.epsilon == epsilon_of_history([(20.0, 1.0, 1), (1.0, 0.01, 1_000)], 1e-5, "rdp")
    assert r.label_epsilon == epsilon_for(20.0, 1.0, 1, 1e-5, "rdp") and r.label_budget == 0.05
    with pytest.raises(PrivacyError, match="does not begin with the label histogram"):
        PrivacyReport.from_accountant(a, delta=1e-5, max_grad_norm=1.0, label_noise_multiplier=21.0)
