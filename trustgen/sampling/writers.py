"""Writing samples: .csv for tables, .npz or .png for images (every file written atomically).

:func:`write_stream` writes the batches of :meth:`~trustgen.sampling.sampler.Sampler.stream`
as they come, so memory stays flat for any number of samples: a ``.csv`` gets each batch's
rows appended, a ``.npz`` gets each batch's images appended to its ``x.npy`` member (the
labels wait in an unnamed temporary file, then become ``y.npy``); the file is the one
``np.savez`` would write. A ``.png`` is a figure of every sample it was given, so it holds
them all, and its size is bounded (:data:`MAX_GRID_IMAGES`, :data:`MAX_PNG_ROWS`). Every file
is written beside its target and renamed over it at the end: an error or a kill midway leaves
the old file or none, never half of one.

Example:
    >>> write_stream(Sampler(run).stream(10**6, seed=0), "samples.csv", schema=run.schema,
    ...              n=10**6)  # doctest: +SKIP
    Written(path=PosixPath('samples.csv'), n=1000000, label_counts={...})
"""

from __future__ import annotations

import contextlib
import math
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterable, Iterator

import numpy as np
import pandas as pd

from trustgen.data.encoders import Data
from trustgen.data.schema import Schema
from trustgen.errors import ConfigError
from trustgen.io import atomic_write

SUFFIXES = {"tabular": (".csv", ".png"), "image": (".npz", ".png")}

MAX_SAMPLES = 10 ** 9  # per file: a bound on typing errors (-n 1e12), not on memory (writes stream)
MAX_GRID_IMAGES = 400  # a .png grid shows every image; more would not be readable
MAX_PNG_ROWS = 10_000  # a .png of marginals is drawn from every sample, held in memory


@dataclass(frozen=True)
class Written:
    """What a writer put in a file: its path, the number of samples in it, and how many of
    them each class index has (classes with none left out; empty for unconditional runs)."""

    path: Path
    n: int
    label_counts: dict[int, int]


def check_out_path(out: str | Path, kind: str | None = None, n: int | None = None) -> Path:
    """The output path if its suffix names a format trustgen writes for ``kind`` of data
    (``"tabular"``, ``"image"``, or None: any) and, if ``n`` is given, that format can hold
    ``n`` samples; else a ConfigError (checked before sampling)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".npz", ".png"):
        raise ConfigError(f"--out must end in .csv, .npz or .png, got {str(out)!r}")
    if kind is not None and suffix not in SUFFIXES[kind]:
        raise ConfigError(f"{kind} samples are written as {' or '.join(SUFFIXES[kind])}, not {out.suffix!r}")
    if n is not None and n > MAX_SAMPLES:
        raise ConfigError(f"{n:,} samples are more than one file takes (at most {MAX_SAMPLES:,}): write several "
                          "files, each with its own --seed")
    if n is not None and suffix == ".png" and kind == "image" and n > MAX_GRID_IMAGES:
        raise ConfigError(f"a .png grid shows at most {MAX_GRID_IMAGES} images, not {n:,}: write .npz for more")
    if n is not None and suffix == ".png" and kind == "tabular" and n > MAX_PNG_ROWS:
        raise ConfigError(f"a .png of marginals is drawn from at most {MAX_PNG_ROWS:,} samples, not {n:,}: "
                          "write .csv for more")
    return out


def write_samples(batch, out: str | Path, *, schema: Schema, title: str = "samples",
                  reference: Data | None = None) -> Path:
    """Write ``batch`` (a :class:`~trustgen.sampling.sampler.SampleBatch`) to ``out``.

    Tables: ``.csv``, or ``.png`` (marginal plots of the samples alone; against ``reference``
    data only when the caller passes it, and the figure then says that it shows that data).
    Images: ``.npz`` (arrays ``x`` and ``y``), or ``.png`` (a grid of every image, a row per class).
    """
    n = len(batch.encoded)
    return write_stream([batch], out, schema=schema, n=n, title=title, reference=reference).path


def write_stream(batches: Iterable, out: str | Path, *, schema: Schema, n: int, title: str = "samples",
                 reference: Data | None = None) -> Written:
    """Write the ``n`` samples of ``batches`` (SampleBatch after SampleBatch, e.g. a
    :meth:`~trustgen.sampling.sampler.Sampler.stream`) to ``out``, as :func:`write_samples` does
    for one batch. Only a ``.png`` holds every sample in memory.

    Raises:
        ConfigError: before reading a batch, if ``out`` cannot hold ``n`` samples of this kind
            (:func:`check_out_path`); at the end, if ``batches`` held other than ``n`` samples
            (nothing is written then).
    """
    out = check_out_path(out, schema.kind, n)
    suffix = out.suffix.lower()
    tally = _Tally(n, max(schema.n_classes, 1))
    if suffix == ".csv":
        atomic_write(out, lambda f: _write_csv(f, tally.counted(batches)), "w")
    elif suffix == ".npz":
        atomic_write(out, lambda f: _write_npz(f, tally.counted(batches), n, schema, out.parent), "wb")
    else:
        _write_png(list(tally.counted(batches)), out, schema, title, reference)
    return Written(out, tally.seen, {i: int(c) for i, c in enumerate(tally.counts) if c})


class _Tally:
    """Counts samples and labels as batches pass, and refuses more or fewer than announced."""

    def __init__(self, n: int, k: int) -> None:
        self.n, self.seen, self.counts = n, 0, np.zeros(k, dtype=np.int64)

    def counted(self, batches: Iterable) -> Iterator:
        for batch in batches:
            self.seen += len(batch.encoded)
            if self.seen > self.n:
                raise ConfigError(f"the samples to write hold more than the {self.n} announced")
            if batch.labels is not None:
                self.counts += np.bincount(batch.labels, minlength=len(self.counts))
            yield batch
        if self.seen != self.n:  # inside the write: the temporary file is dropped, not renamed
            raise ConfigError(f"the samples to write hold {self.seen}, not the {self.n} announced")


#: Per-sample fields a batch may carry beyond its data, in the order files hold them:
#: (name, per-sample shape from the schema or None for a scalar).
UNCERTAINTY_FIELDS = (("uncertainty", False), ("label_disagreement", False), ("uncertainty_map", True))


def _extras(batch) -> list[tuple[str, np.ndarray]]:
    """The uncertainty arrays ``batch`` carries (none unless they were asked for)."""
    return [(name, getattr(batch, name)) for name, _ in UNCERTAINTY_FIELDS if getattr(batch, name) is not None]


def _write_csv(f: IO[str], batches: Iterator) -> None:
    for i, batch in enumerate(batches):
        rows = batch.data
        scalars = [(name, v) for name, v in _extras(batch) if np.ndim(v) == 1]
        if scalars:  # per-sample scores as the last columns (a table's map is its columns' spread: not written)
            rows = rows.assign(**{name: np.asarray(v, dtype=np.float64) for name, v in scalars})
        rows.to_csv(f, header=i == 0, index=False)


def _npy_header(f: IO[bytes], dtype: np.dtype, shape: tuple[int, ...]) -> None:
    """The .npy header ``np.save`` writes for an array of ``dtype`` and ``shape`` (C order)."""
    np.lib.format.write_array_header_1_0(
        f, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape})


def _write_npz(f: IO[bytes], batches: Iterator, n: int, schema: Schema, spill_dir: Path) -> None:
    """What ``np.savez(f, x=float32 images, y=int64 labels, [uncertainty=..., ...])`` writes,
    filled batch by batch (ZIP64 members, as numpy writes them, so no member has a size limit)."""
    x_dtype, y_dtype = np.dtype("<f4"), np.dtype("<i8")
    layout = None  # the members after x, fixed by the first batch: name -> (dtype, per-sample shape)
    # Everything after x comes with the images but belongs to later members: it waits in unnamed
    # files beside the output (on its disk; the system deletes them whatever happens).
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf, \
            contextlib.ExitStack() as stack:
        spills: dict[str, IO[bytes]] = {}
        with zf.open("x.npy", mode="w", force_zip64=True) as member:
            _npy_header(member, x_dtype, (n, *schema.shape))
            for batch in batches:
                x = np.ascontiguousarray(batch.data.x, dtype=x_dtype)
                if x.shape[1:] != tuple(schema.shape):
                    raise ConfigError(f"images of shape {x.shape[1:]} do not match the schema's {schema.shape}")
                member.write(x.tobytes())
                rest = ([] if batch.labels is None else [("y", batch.labels)]) + _extras(batch)
                found = {name: (y_dtype if name == "y" else x_dtype, np.shape(v)[1:]) for name, v in rest}
                if layout is None:
                    layout = found
                    spills = {name: stack.enter_context(tempfile.TemporaryFile(dir=spill_dir)) for name in layout}
                if found != layout:
                    raise ConfigError("the batches to write do not all carry the same fields (labels, uncertainty)")
                for name, v in rest:
                    spills[name].write(np.ascontiguousarray(v, dtype=layout[name][0]).tobytes())
        for name, (dtype, shape) in (layout or {}).items():
            with zf.open(f"{name}.npy", mode="w", force_zip64=True) as member:
                _npy_header(member, dtype, (n, *shape))
                spills[name].seek(0)
                shutil.copyfileobj(spills[name], member, 1 << 20)


def _write_png(batches: list, out: Path, schema: Schema, title: str, reference: Data | None) -> None:
    from trustgen.plots import image_grid, marginals, save_figure, score_histograms, uncertainty_grid

    labels = None if batches[0].labels is None else np.concatenate([b.labels for b in batches])
    if batches[0].uncertainty is not None:
        scores = np.concatenate([b.uncertainty for b in batches])
        if schema.kind == "image":  # every sample above its map, the most uncertain first
            fig = uncertainty_grid(np.concatenate([b.data.x for b in batches]),
                                   np.concatenate([b.uncertainty_map for b in batches]), scores,
                                   low=schema.low, high=schema.high, title=f"{title}: uncertainty (posterior std)")
        else:
            fig = score_histograms([("samples", {"uncertainty": scores})], title=f"{title}: uncertainty")
        save_figure(fig, out)
        return
    if schema.kind == "image":
        x = np.concatenate([b.data.x for b in batches])
        per_row = min(20, max(10, math.ceil(math.sqrt(len(x)))))  # every image, on a page-sized grid
        save_figure(image_grid(x, labels, schema.classes, low=schema.low, high=schema.high, per_row=per_row,
                               per_class=None, title=title), out)
        return
    data = pd.concat([b.data for b in batches], ignore_index=True)
    note = None if reference is None else (f"{title}: synthetic vs the real data given "
                                           "(this figure shows that real data: treat it as private)")
    save_figure(marginals(reference, data, list(data.columns), title=note or title), out)


__all__ = ["MAX_GRID_IMAGES", "MAX_PNG_ROWS", "MAX_SAMPLES", "Written", "check_out_path", "write_samples",
           "write_stream"]
