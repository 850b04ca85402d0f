"""What every section of the evaluation report reads: the loaded data in the views the metrics need.

:class:`EvaluationInputs` holds the run's schema, the synthetic samples, the real training data
and the optional holdout (already loaded and validated against the schema), each as

* a table in schema order (categories as their normalised key, numbers as floats), or
* for images: pixels scaled to [0, 1], the labels, and flat pixel matrices,

plus the features computed once and shared by several sections: the image feature space (a
:class:`~trustgen.evaluation.fidelity_image.FeatureExtractor` fitted on the real images) and the
association matrices of the tables.

Example:
    >>> inputs = EvaluationInputs.from_data(schema, synth, real, holdout, seed=0)  # doctest: +SKIP
    >>> x, y = inputs.xy("synth")  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from trustgen.data.encoders import Data, ImageData
from trustgen.data.schema import CategoricalColumn, ImageSchema, Schema, category_key
from trustgen.evaluation.fidelity_image import FeatureExtractor
from trustgen.evaluation.fidelity_tabular import association_matrix
from trustgen.evaluation.labels import TRAINING_DATA_NOTICE

MAX_ROWS = 5000  # cap on the rows fed to the quadratic-cost metrics (C2ST, KDE attack, PRDC)

Which = Literal["synth", "real", "holdout"]


def subsample(n: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of at most ``cap`` of ``n`` rows, drawn without replacement (all if n <= cap)."""
    return np.arange(n) if n <= cap else np.sort(rng.choice(n, size=cap, replace=False))


def _tabular(df: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Columns in schema order; categories as their normalised string key, numbers as floats."""
    out = {}
    for c in schema.columns:
        if isinstance(c, CategoricalColumn):
            out[c.name] = df[c.name].map(category_key).astype(str).to_numpy()
        else:
            out[c.name] = pd.to_numeric(df[c.name]).to_numpy(np.float64)
    return pd.DataFrame(out, columns=[c.name for c in schema.columns])


def _pixels(data: ImageData, schema: ImageSchema) -> np.ndarray:
    """Images scaled to [0, 1] (N x C x H x W, float32)."""
    return ((np.asarray(data.x, np.float64) - schema.low) / (schema.high - schema.low)).astype(np.float32)


def _flat(x: np.ndarray | None) -> np.ndarray | None:
    return None if x is None else x.reshape(len(x), -1).astype(np.float64)


@dataclass
class ImageFeatures:
    """The feature space the image sections compare real and synthetic images in.

    ``extractor`` is None when the real images have no labels; the features are then raw pixels.
    """

    real: np.ndarray
    synth: np.ndarray
    description: str
    extractor: FeatureExtractor | None


@dataclass
class EvaluationInputs:
    """The loaded inputs and their per-kind views, shared by the report sections.

    Build it with :meth:`from_data`. ``synth_t``/``real_t``/``hold_t`` are the tables in schema
    order (tables) or flat pixel matrices (images), the form the utility models and the privacy
    attacks read; ``*_x``/``*_y`` are the scaled images and their labels (images only).
    """

    schema: Schema
    seed: int
    synth_t: Any
    real_t: Any
    hold_t: Any = None
    synth_x: np.ndarray | None = None
    real_x: np.ndarray | None = None
    hold_x: np.ndarray | None = None
    synth_y: Any = None
    real_y: Any = None
    hold_y: Any = None
    _features: ImageFeatures | None = field(default=None, init=False, repr=False)
    _associations: tuple[pd.DataFrame, pd.DataFrame] | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_data(cls, schema: Schema, synth: Data, real: Data, holdout: Data | None, seed: int) -> EvaluationInputs:
        """Views of data already loaded and validated against ``schema``."""
        if isinstance(schema, ImageSchema):
            synth_x, real_x = _pixels(synth, schema), _pixels(real, schema)
            hold_x = None if holdout is None else _pixels(holdout, schema)
            return cls(schema, seed, _flat(synth_x), _flat(real_x), _flat(hold_x), synth_x, real_x, hold_x,
                       synth.y, real.y, None if holdout is None else holdout.y)
        return cls(schema, seed, _tabular(synth, schema), _tabular(real, schema),
                   None if holdout is None else _tabular(holdout, schema))

    @property
    def is_image(self) -> bool:
        return isinstance(self.schema, ImageSchema)

    @property
    def has_holdout(self) -> bool:
        return self.hold_t is not None

    @property
    def test_desc(self) -> str:
        """Where the models trained on synthetic data are tested, in words."""
        return ("tested on the real holdout" if self.has_holdout
                else f"{TRAINING_DATA_NOTICE} (rows the generator saw: optimistic)")

    def rng(self) -> np.random.Generator:
        """A fresh generator seeded with ``seed`` (each section draws the same stream)."""
        return np.random.default_rng(self.seed)

    def xy(self, which: Which) -> tuple[Any, Any]:
        """Features and labels of ``which`` for the utility models (the run must have a label)."""
        if self.is_image:
            x = {"synth": self.synth_t, "real": self.real_t, "holdout": self.hold_t}[which]
            y = {"synth": self.synth_y, "real": self.real_y, "holdout": self.hold_y}[which]
            return x, None if y is None else np.asarray(y)
        df = {"synth": self.synth_t, "real": self.real_t, "holdout": self.hold_t}[which]
        label = self.schema.label
        return df.drop(columns=[label]), df[label].to_numpy()

    def test_xy(self) -> tuple[Any, Any]:
        """Features and labels the synthetic-data models are tested on: the holdout, else the training data."""
        return self.xy("holdout" if self.has_holdout else "real")

    def image_features(self) -> ImageFeatures:
        """Real and synthetic image features, computed once (images only).

        With labelled real images: the penultimate layer of a FeatureExtractor fitted on them;
        without labels: the raw pixels.
        """
        if self._features is None:
            if self.real_y is not None:
                extractor = FeatureExtractor(seed=self.seed).fit(self.real_x, self.real_y)
                self._features = ImageFeatures(
                    extractor.transform(self.real_x), extractor.transform(self.synth_x),
                    "penultimate layer of a FeatureExtractor conv net trained on the real training images and "
                    "labels (no pretrained weights; not comparable to Inception FID)", extractor)
            else:
                self._features = ImageFeatures(
                    self.real_t, self.synth_t,
                    "raw pixels scaled to [0, 1] (the images have no labels to train a feature extractor on)", None)
        return self._features

    def associations(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Association matrices of the real and synthetic tables, computed once (tables only)."""
        if self._associations is None:
            self._associations = (association_matrix(self.real_t), association_matrix(self.synth_t))
        return self._associations
