"""Writing samples: .csv for tables, .npz or .png for images (every file written atomically).

Example:
    >>> write_samples(batch, "samples.csv", schema=run.schema)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trustgen.data.encoders import Data, ImageData
from trustgen.data.schema import Schema
from trustgen.errors import ConfigError
from trustgen.io import atomic_write, atomic_write_text

SUFFIXES = {"tabular": (".csv", ".png"), "image": (".npz", ".png")}


def check_out_path(out: str | Path, kind: str | None = None) -> Path:
    """The output path if its suffix names a format trustgen writes for ``kind`` of data
    (``"tabular"``, ``"image"``, or None: any), else a ConfigError (checked before sampling)."""
    out = Path(out)
    if out.suffix.lower() not in (".csv", ".npz", ".png"):
        raise ConfigError(f"--out must end in .csv, .npz or .png, got {str(out)!r}")
    if kind is not None and out.suffix.lower() not in SUFFIXES[kind]:
        raise ConfigError(f"{kind} samples are written as {' or '.join(SUFFIXES[kind])}, not {out.suffix!r}")
    return out


def write_samples(batch, out: str | Path, *, schema: Schema, title: str = "samples",
                  reference: Data | None = None) -> Path:
    """Write ``batch`` (a :class:`~trustgen.sampling.sampler.SampleBatch`) to ``out``.

    Tables: ``.csv``, or ``.png`` (marginal plots of the samples alone; against ``reference``
    data only when the caller passes it, and the figure then says that it shows that data).
    Images: ``.npz`` (arrays ``x`` and ``y``), or ``.png`` (a labelled grid).
    """
    from trustgen.plots import image_grid, marginals, save_figure

    out = Path(out)
    suffix = out.suffix.lower()
    kind = "image" if isinstance(batch.data, ImageData) else "tabular"
    check_out_path(out, kind)
    if kind == "image" and suffix == ".npz":
        arrays = {"x": batch.data.x.astype(np.float32)}
        if batch.labels is not None:
            arrays["y"] = batch.labels.astype(np.int64)
        atomic_write(out, lambda f: np.savez(f, **arrays), "wb")
    elif kind == "image":
        save_figure(image_grid(batch.data.x, batch.labels, schema.classes, low=schema.low, high=schema.high,
                               title=title), out)
    elif suffix == ".csv":
        atomic_write_text(out, batch.data.to_csv(index=False))
    else:
        note = None if reference is None else (f"{title}: synthetic vs the real data given "
                                               "(this figure shows that real data: treat it as private)")
        save_figure(marginals(reference, batch.data, list(batch.data.columns), title=note or title), out)
    return out
