"""What every refused ``trustgen`` command must look like (shared by the sample-command tests)."""

from __future__ import annotations

from trustgen.cli import main


def refused(capsys, argv, words, out) -> None:
    """``argv`` exits 2 with one stderr line holding ``words``, no traceback, and no ``out``
    (nor a temporary beside it)."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and words in err, err
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.*"))
