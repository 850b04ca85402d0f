"""Files: atomic writes, JSON reads that fail with a teaching error, and one JSON value rule.

A crash or a failed serialisation never leaves half a file behind: every writer goes through
:func:`atomic_write` (temporary file in the same folder, fsync, rename).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from trustgen.errors import TrustgenError


def _file_mode(private: bool) -> int:
    if private:
        return 0o600
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb", *,
                 private: bool = False) -> None:
    """Call ``write(f)`` on a temporary file beside ``path``, then rename it over ``path``.

    The file gets the permissions of a new file under the user's umask, or ``0600`` (owner
    only) when ``private``: for files that hold secrets or private state (resume checkpoints).

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
        >>> atomic_write(p, lambda f: f.write("hi"), "w"); p.read_text()
        'hi'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode(private))  # mkstemp makes 0600 whatever the umask
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporaries :func:`atomic_write` leaves when the process is killed mid-write
    (``.NAME.*.tmp`` beside the target); returns what was removed. Call it only where no write
    is in progress."""
    removed = []
    for f in Path(directory).glob(".*.tmp"):
        f.unlink(missing_ok=True)
        removed.append(f)
    return removed


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    atomic_write(path, lambda f: f.write(text), "w")


def atomic_torch_save(obj: Any, path: str | os.PathLike, *, private: bool = False) -> None:
    """``torch.save`` to ``path`` atomically (``private``: owner-only, see :func:`atomic_write`)."""
    import torch  # here, not at the top: reading a schema or report needs no torch

    atomic_write(path, lambda f: torch.save(obj, f), "wb", private=private)


def safe_torch_load(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """Load a file saved by :func:`atomic_torch_save` without executing code from it."""
    import torch

    return torch.load(path, map_location=map_location, weights_only=True)


def read_json(path: str | os.PathLike, what: str, error: type[TrustgenError] = TrustgenError,
              hint: str = "") -> Any:
    """Parse the JSON file ``path``; raise ``error`` naming ``what`` it should be if it is
    missing, unreadable or not JSON (``hint`` says how to fix it)."""
    p = Path(path)
    tail = f"; {hint}" if hint else ""
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise error(f"{what} {str(p)!r} does not exist{tail}") from e
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"cannot read {what} {str(p)!r}: {e}{tail}") from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{what} {str(p)!r} is not valid JSON ({e}): the file is damaged or truncated{tail}") from e


def json_value(obj: Any) -> Any:
    """Recursively convert ``obj`` to strict-JSON built-in types.

    The one rule for every file trustgen writes: numpy scalars and arrays become Python
    values and lists, dict keys become strings, NaN becomes ``None`` (no value), +/-inf become
    the strings ``"inf"``/``"-inf"``, and anything else unknown becomes its ``str``.

    Example:
        >>> json_value({"a": float("nan"), 1: float("inf")})
        {'a': None, '1': 'inf'}
    """
    if isinstance(obj, dict):
        return {str(json_value(k)): json_value(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_value(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy arrays and scalars, tensors
        return json_value(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)
