"""Files: atomic writes of files and directories, directory locks, JSON reads that fail with a
teaching error, and one JSON value rule.

A crash or a failed serialisation never leaves half a file behind: every writer goes through
:func:`atomic_write` (temporary file in the same folder, fsync, rename). A directory that is one
artefact (a run) is written whole by :func:`atomic_write_directory` (staged beside it, then swapped
in), under :func:`directory_lock` so that two processes never write it at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import math
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

from trustgen.errors import ConfigError, RunError, TrustgenError
from trustgen.json_fields import json_type


def _file_mode(private: bool) -> int:
    return 0o600 if private else 0o666 & ~_umask()


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


def check_path_name(path: str | os.PathLike, option: str, extra: int = 0) -> None:
    """Refuse a path the system could not even look up (a NUL byte, a name longer than the file
    system allows, ``extra`` bytes of temporaries included) with a ConfigError, before any stat:
    such a path makes even ``exists()`` raise."""
    text = os.fspath(path)
    shown = repr(text[:60]) + ("..." if len(text) > 60 else "")
    if "\x00" in str(text):
        raise ConfigError(f"{option} {shown} contains a NUL byte: no file can have that name")
    try:
        name_max = os.pathconf(".", "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    try:
        path_max = os.pathconf(".", "PC_PATH_MAX")
    except (OSError, ValueError):
        path_max = 4096
    whole = len(os.fsencode(os.path.abspath(text)))
    if whole + extra >= path_max:
        raise ConfigError(f"{option} {shown} is too long a path for this system ({whole} bytes; it allows "
                          f"{path_max}): choose a shorter one")
    for part in Path(text).parts:
        size = len(os.fsencode(part))
        if size + extra > name_max:
            tail = f", and trustgen's temporaries beside it add {extra}" if extra else ""
            raise ConfigError(f"{option} {shown} has a name too long for this file system ({size} bytes; it allows "
                              f"{name_max}{tail}): choose a shorter name")


# What the temporaries beside an output add to its name (".NAME.<8 random characters>.staging" and the like).
TEMPORARY_NAME_EXTRA = 24


def check_output_path(path: str | os.PathLike, kind: str, option: str = "--out") -> Path:
    """Refuse, before any work, an output that could not be written at the end: ``path`` exists
    as the other kind (``kind`` is ``"file"`` or ``"directory"``), sits under a file, is a
    symbolic link or a mount point (a directory is written beside itself and swapped in, which
    neither allows), or a directory it will be written in refuses a new file (probed by creating
    one and removing it: permission bits lie for root and read-only mounts). Raises
    :class:`ConfigError` in one line."""
    if str(path) == "":
        raise ConfigError(f"{option} is empty: give a path")
    check_path_name(path, option, TEMPORARY_NAME_EXTRA)
    p = Path(os.path.abspath(path))  # "." has no name to put a sibling lock or staging copy beside
    try:
        if kind == "directory" and p.is_symlink():
            raise ConfigError(f"{option} {str(path)!r} is a symbolic link: give the directory it points to")
        if p.exists() and kind == "file" and p.is_dir():
            raise ConfigError(f"{option} {str(path)!r} is a directory; give a file path")
        if p.exists() and kind == "directory" and not p.is_dir():
            raise ConfigError(f"{option} {str(path)!r} is a file, not a directory; give a directory path")
        if kind == "directory" and p.is_dir() and _is_mount_point(p):
            raise ConfigError(f"{option} {str(path)!r} is a mount point: trustgen writes the new directory "
                              "beside it and swaps the two, which cannot cross a mount; give a directory inside it")
        probes = [_nearest_existing(p.parent, option, path)]
        if kind == "directory" and p.is_dir():
            probes.append(p)  # the resume state is written inside it
        for probe in probes:
            _probe_writable(probe, option, path)
    except OSError as e:  # a symlink loop, a vanished directory...
        raise ConfigError(f"{option} {str(path)!r} cannot be used: {e.strerror or e}") from None
    return Path(path)


def _is_mount_point(p: Path) -> bool:
    """Also a bind mount of the same file system, which ``os.path.ismount`` does not see."""
    if os.path.ismount(p):
        return True
    try:
        with open("/proc/self/mountinfo") as f:
            points = {line.split()[4].replace("\\040", " ") for line in f if len(line.split()) > 4}
    except OSError:
        return False
    return os.path.realpath(p) in points


def _nearest_existing(p: Path, option: str, shown: str | os.PathLike) -> Path:
    while not p.exists():  # written by the command: the nearest existing ancestor must allow it
        if p.is_symlink():
            raise ConfigError(f"{option} {str(shown)!r} cannot be created: {str(p)!r} is a broken symbolic link "
                              "(or a loop of them)")
        p = p.parent
    if not p.is_dir():
        raise ConfigError(f"{option} {str(shown)!r} cannot be created: {str(p)!r} is a file, not a directory")
    return p


def _probe_writable(directory: Path, option: str, shown: str | os.PathLike) -> None:
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".trustgen-write-probe.")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise ConfigError(f"{option} {str(shown)!r} cannot be written: {str(directory)!r} refuses new files "
                          f"({e.strerror or e}); choose a writable location") from None


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


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (read in chunks: model files can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False where the
    system or file system does not offer it."""
    func = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if func is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if func(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _leftovers(path: Path, kind: str) -> list[Path]:
    return sorted(path.parent.glob(f".{path.name}.*.{kind}"), key=lambda p: p.stat().st_mtime)


def missing_ancestors(path: str | os.PathLike) -> list[Path]:
    """The directories above ``path`` that do not exist yet, deepest first: what writing it
    creates, and what :func:`remove_empty` takes away again if the command fails."""
    missing = []
    p = Path(os.path.abspath(path)).parent
    while not p.exists():
        missing.append(p)
        p = p.parent
    return missing


def remove_empty(directories: list[Path]) -> None:
    """Remove each of ``directories`` (deepest first) that exists and is empty."""
    for d in directories:
        with contextlib.suppress(OSError):
            d.rmdir()


def recover_directory(path: str | os.PathLike) -> None:
    """Finish what a kill during :func:`atomic_write_directory` interrupted: if the new directory
    never arrived, put the old one back; then sweep staged and replaced copies. Call it only under
    :func:`directory_lock` (another writer's staging would be swept)."""
    path = Path(path)
    replaced = _leftovers(path, "replaced")
    if not path.exists() and replaced:
        os.rename(replaced.pop(), path)  # the old, complete directory
    for leftover in replaced + _leftovers(path, "staging"):
        shutil.rmtree(leftover, ignore_errors=True)


def atomic_write_directory(path: str | os.PathLike, fill: Callable[[Path], None]) -> Path:
    """Write the directory ``path`` whole: ``fill(staging)`` writes every file into a staging
    directory beside it, which then takes the place of ``path`` in one step (an atomic exchange
    where the system has one; else rename-aside, undone by :func:`recover_directory`). A kill at
    any moment leaves the old complete directory or the new complete one, never a mix.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()) / "run"
        >>> _ = atomic_write_directory(d, lambda s: (s / "a.txt").write_text("1"))
        >>> _ = atomic_write_directory(d, lambda s: (s / "b.txt").write_text("2"))
        >>> sorted(p.name for p in d.iterdir())
        ['b.txt']
    """
    path = Path(os.path.abspath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    with directory_lock(path):
        recover_directory(path)
        staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".staging"))
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes 0700 whatever the umask
        try:
            fill(staging)
            _fsync_directory(staging)
            if not path.exists():
                os.rename(staging, path)
            elif _exchange(staging, path):
                shutil.rmtree(staging)  # it now holds the old directory
            else:
                aside = staging.with_name(staging.name[: -len(".staging")] + ".replaced")
                os.rename(path, aside)
                os.rename(staging, path)
                shutil.rmtree(aside)
            _fsync_directory(path.parent)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return path


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


_HELD_LOCKS: dict[str, int] = {}  # "pid:lock path" -> depth: a process may nest its own lock


@contextlib.contextmanager
def directory_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on the directory ``path`` (an ``flock`` on ``.NAME.lock`` beside it,
    released by the system if the process dies), or raise :class:`RunError` at once if another
    process holds it. Re-entrant within a process."""
    import fcntl

    path = Path(os.path.abspath(path))  # "." has no name: its lock goes beside it, under its real name
    lock = path.parent / f".{path.name}.lock"
    key = f"{os.getpid()}:{os.path.abspath(lock)}"  # a forked child does not inherit the right to nest
    if key in _HELD_LOCKS:
        _HELD_LOCKS[key] += 1
        try:
            yield
        finally:
            _HELD_LOCKS[key] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunError(f"{str(path)!r} is being written by another trustgen process (pid {holder}); "
                           "wait for it to finish or choose another --out") from None
        try:
            if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                break  # the file we locked is still the lock (not one a releasing holder unlinked)
        except FileNotFoundError:
            pass
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    _HELD_LOCKS[key] = 1
    try:
        yield
    finally:
        del _HELD_LOCKS[key]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        os.close(fd)


def safe_torch_load(path: str | os.PathLike, map_location: Any = "cpu", *, what: str = "torch file",
                    hint: str = "re-create it with trustgen") -> Any:
    """Load a file saved by :func:`atomic_torch_save` without executing code from it.

    Any failure (missing, empty, truncated, not a torch file, or holding objects beyond tensors and
    plain values, which ``weights_only`` refuses) raises :class:`RunError` in one line naming
    ``what`` the file should be; ``hint`` says how to fix it. The message never suggests loading
    the file unsafely: a file trustgen cannot read safely is one trustgen did not write.
    """
    import torch

    p = Path(path)
    with warnings.catch_warnings(record=True) as caught:  # a refused file's warnings are noise
        warnings.simplefilter("always")
        try:
            obj = torch.load(p, map_location=map_location, weights_only=True)
        except Exception as e:  # torch.load's failure types on a damaged file are undocumented and many
            raise RunError(f"{what} {str(p)!r} {_torch_file_problem(p)}; {hint}") from e
    for w in caught:  # a file that did load: pass its warnings on
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return obj


def _torch_file_problem(p: Path) -> str:
    """What is wrong with a file ``torch.load`` refused, said from the file itself: torch's
    messages span lines, offer the unsafe loader, and its error types vary with the damage."""
    import zipfile

    try:  # torch's own OSErrors (EINVAL on some truncated archives) say nothing about readability
        with open(p, "rb") as f:
            if not f.read(1):
                return "is empty (0 bytes)"
    except FileNotFoundError:
        return "does not exist"
    except OSError as oe:
        return f"cannot be read ({oe.strerror or oe})"
    if not zipfile.is_zipfile(p):
        return "is not a torch file written by trustgen (it is truncated, damaged or another kind of file)"
    try:
        with zipfile.ZipFile(p) as z:
            torch_zip = any(n.endswith("/data.pkl") for n in z.namelist())
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError):  # a damaged name in the directory: not UTF-8
        return "is damaged (a zip archive whose directory cannot be read)"
    if not torch_zip:
        return "is a zip archive but not a torch file"
    import torch

    try:
        with warnings.catch_warnings():  # the scan warns about the same pickle protocol torch.load did
            warnings.simplefilter("ignore")
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(p)  # reads opcodes, runs nothing
    except Exception:  # its pickle cannot even be scanned: damaged
        unsafe = []
    if unsafe:
        return (f"refers to Python objects or code ({', '.join(unsafe[:3])}) that trustgen never loads: it was "
                "not written by trustgen, or was altered")
    return "is damaged (a torch archive whose contents cannot be read)"


_JSON_TYPES = {dict: "a JSON object {...}", list: "a JSON list [...]"}


def read_json(path: str | os.PathLike, what: str, error: type[TrustgenError] = TrustgenError,
              hint: str = "", expect: type | None = None) -> Any:
    """Parse the JSON file ``path``; raise ``error`` naming ``what`` it should be if it is
    missing, unreadable, not UTF-8 text, not JSON, or (with ``expect``, ``dict`` or ``list``) not
    a JSON value of that type at its top level (``hint`` says how to fix it).

    A UTF-8 byte-order mark (Windows editors write one) is accepted."""
    p = Path(path)
    tail = f"; {hint}" if hint else ""
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError as e:
        raise error(f"{what} {str(p)!r} does not exist{tail}") from e
    except UnicodeDecodeError as e:  # a binary file (an image, a model, random bytes) given by mistake
        bad = e.object[e.start:e.start + 1]
        raise error(f"{what} {str(p)!r} is not a JSON text file (not UTF-8: byte {e.start} is {bad!r}){tail}") from e
    except OSError as e:
        raise error(f"cannot read {what} {str(p)!r}: {e.strerror or e}{tail}") from e
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as e:  # ValueError: JSONDecodeError, or an integer too long to parse
        raise error(f"{what} {str(p)!r} is not valid JSON ({e}): the file is damaged or truncated{tail}") from e
    if expect is not None and not isinstance(value, expect):
        raise error(f"{what} {str(p)!r} must hold {_JSON_TYPES.get(expect, expect.__name__)} at its top level, "
                    f"got {json_type(value)}{tail}")
    return value


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
