"""Watermarked releases: sampling with a key, and testing a released file for it.

``trustgen sample --watermark-key KEY`` draws through :func:`watermarked_sampler` (the latent
watermark, a noise hook) and passes every batch through :func:`watermark_batch` (the output
watermark of its kind: the dither lattice for images, the table watermark for tables), so a
sample carries two independent marks: one in the latent, found by inverting the model, robust
to edits that keep it on the model's manifold; one in its values, found without the model,
exact on clean copies. ``trustgen detect`` runs every test that applies (:func:`detect_data`)
and combines them per sample and per file by Bonferroni (the smallest p-value times the number
of tests), which is valid whatever the tests' dependence. The table test decides on a table
as a whole (its rows share dithers), so a table's per-sample p-values come from the latent
test alone (with the run), or there is one entry, the table's.

The key never leaves the caller: samples and runs carry at most its id.

Example:
    >>> sampler = watermarked_sampler(run, key)  # doctest: +SKIP
    >>> batch = watermark_batch(sampler.sample(100, seed=0), key, run.schema)  # doctest: +SKIP
    >>> detect_data(batch.data, key, run.schema, run=run).detected.all()  # doctest: +SKIP
    True
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from trustgen.data.encoders import Data, ImageData, make_encoder
from trustgen.data.schema import ImageSchema, Schema
from trustgen.errors import ConfigError
from trustgen.sampling.sampler import SampleBatch, Sampler
from trustgen.watermark.dither import detect_images, embed_images
from trustgen.watermark.keys import WatermarkKey
from trustgen.watermark.latent import LatentWatermark, detect_latent
from trustgen.watermark.stats import Decisions, check_fpr


def watermarked_sampler(run, key: WatermarkKey, **sampler_args) -> Sampler:
    """A :class:`Sampler` of ``run`` whose latent noise carries ``key`` (its other arguments as for Sampler).

    Raises ConfigError before any sampling when the run's samples cannot carry the value mark
    (a table without a continuous column)."""
    if not isinstance(run.schema, ImageSchema):
        from trustgen.watermark.table import continuous_columns

        if not continuous_columns(run.schema):
            raise ConfigError("this run's table has no continuous numeric column (NumericColumn with integer=False)"
                              ": its samples cannot carry the table watermark")
    hooks = tuple(sampler_args.pop("noise_hooks", ())) + (LatentWatermark(key),)
    return Sampler(run, noise_hooks=hooks, **sampler_args)


def watermark_batch(batch: SampleBatch, key: WatermarkKey, schema: Schema) -> SampleBatch:
    """``batch`` with its decoded values marked by ``key`` (images: dither; tables: the table watermark)."""
    if isinstance(schema, ImageSchema):
        data = embed_images(batch.data, schema, key)
    else:
        from trustgen.watermark.table import embed_table

        data = embed_table(batch.data, schema, key)
    return replace(batch, data=data, watermark_key_id=key.key_id)


@dataclass(frozen=True)
class FileDetection(Decisions):
    """Every test run on a set of samples, and their Bonferroni combination.

    Attributes:
        tests: the results of each test (``Detection`` or ``LatentDetection``), by method.
        skipped: method -> why it was not run.
        p_values: per sample, ``min(1, m * min over tests)`` for ``m`` tests.
        p_value: the file's, ``min(1, m * min over tests)`` of the tests' file p-values.
        fpr: the false-positive rate decisions are taken at.
    """

    key_id: str
    tests: dict
    skipped: dict
    p_values: np.ndarray
    p_value: float
    fpr: float

    def to_dict(self) -> dict:
        """``per_sample`` holds one entry per sample, or one for the table when only the table
        test ran (it decides on the table as a whole)."""
        n = len(self.p_values)
        return {"key_id": self.key_id, "fpr": self.fpr, "samples": n, "p_value": self.p_value,
                "detected": self.file_detected, "samples_detected": int(self.detected.sum()),
                "tests": {m: t.to_dict(per_sample=False) for m, t in self.tests.items()}, "skipped": self.skipped,
                "per_sample": [{"p_value": float(p), "detected": bool(p <= self.fpr),
                                **{m: {"score": int(t.counts[i]), "p_value": float(t.p_values[i])}
                                   for m, t in self.tests.items() if len(t.p_values) == n}}
                               for i, p in enumerate(self.p_values)]}


def detect_data(data: Data, key: WatermarkKey, schema: Schema, *, run=None, sampler_config=None,
                fpr: float = 1e-6) -> FileDetection:
    """Test samples (as read from a file) for ``key``: the output watermark of their kind, and,
    with the ``run`` they came from, the latent watermark (by inverting them)."""
    fpr = check_fpr(fpr)
    tests, skipped = {}, {}
    if isinstance(schema, ImageSchema):
        tests["dither"] = detect_images(data, schema, key, fpr=fpr)
    else:
        from trustgen.watermark.table import detect_table

        tests["table"] = detect_table(data, schema, key, fpr=fpr)
    if run is None:
        skipped["latent"] = "no run given (--run): the latent watermark is found by inverting the model"
    elif schema.n_classes and _labels(data, schema) is None:
        skipped["latent"] = "the samples carry no labels, and this run's model inverts with them"
    else:
        x, y = make_encoder(schema).transform(data)
        tests["latent"] = detect_latent(Sampler(run, config=sampler_config), key, x, y, fpr=fpr)
    m = len(tests)
    # The table test decides on the whole table (its rows share dithers); the others per sample.
    per_sample = [np.asarray(t.p_values, dtype=np.float64) for t in tests.values() if len(t.p_values) == len(data)]
    p_values = np.minimum(1.0, m * np.min(per_sample, axis=0)) if per_sample else \
        np.array([min(1.0, m * min(t.p_value for t in tests.values()))])
    p_file = float(min(1.0, m * min(t.p_value for t in tests.values())))
    return FileDetection(key.key_id, tests, skipped, p_values, p_file, fpr)


def _labels(data: Data, schema: Schema):
    if isinstance(data, ImageData):
        return data.y
    return data[schema.label] if schema.label in data else None
