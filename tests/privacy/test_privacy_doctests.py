"""The usage examples in the privacy modules' docstrings run and give the stated results."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize(
    "name",
    [
        "trustgen.privacy",
        "trustgen.privacy.accounting",
        "trustgen.privacy.accountant",
        "trustgen.privacy.config",
        "trustgen.privacy.dp_sgd",
        "trustgen.privacy.label_histogram",
        "trustgen.privacy.engine",
        "trustgen.privacy.plan",
        "trustgen.privacy.report",
        "trustgen.privacy.audit_bounds",
        "trustgen.privacy.dp_domains",
    ],
)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0


def test_own_training_loop_example_in_the_privacy_guide_runs(capsys):
    """The make_private example of docs/privacy.md runs as written (with the rdp accountant, for speed)."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "privacy.md").read_text()
    section = text.split("## Your own training loop", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    code = code.replace("batch_size=50)", 'batch_size=50, accountant="rdp")')
    assert 'accountant="rdp"' in code
    exec(compile(code, "docs/privacy.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert 0.995 * 3.0 <= float(out[0]) <= 3.0
    assert out[1].startswith("Privacy report: DP-SGD")
