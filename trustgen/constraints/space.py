"""Where constraints act: a schema's encoded vector, seen in the data's own units.

Constraints are written in the data's units (a dose in mg, a pixel value in the image's range),
and checked there. Sampling happens in the encoder's space (numbers scaled to [-1, 1], one-hot
categories, images flattened). A :class:`Space` maps one to the other. The map is affine per
coordinate, ``units = offset + scale * encoded``, so a linear rule in units is linear in the
encoded space too, and projections can work there, where every column has the same scale.

Example:
    >>> from trustgen.data.schema import TabularSchema, NumericColumn
    >>> space = Space(TabularSchema([NumericColumn("dose", 0, 10)]))
    >>> space.to_units(torch.tensor([[-1.0], [1.0]], dtype=torch.float64)).ravel().tolist()
    [0.0, 10.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from trustgen.data.encoders import Data, ImageData, make_encoder
from trustgen.data.schema import ImageSchema, NumericColumn, Schema, category_key
from trustgen.errors import ConfigError

PIXELS = "pixels"  # the one "column" of an image schema


@dataclass(frozen=True)
class Region:
    """A rectangle of an image: rows ``[top, bottom)``, columns ``[left, right)``, some channels
    (None: all). Pixel coordinates, 0-based."""

    top: int = 0
    bottom: int | None = None
    left: int = 0
    right: int | None = None
    channels: tuple | None = None

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items() if v is not None}


class Space:
    """The encoded layout of ``schema`` and its affine map to data units.

    Attributes:
        dim: length of the flattened encoded vector.
        offset, scale: float64 ``[dim]``: ``units = offset + scale * encoded``.
        numeric: name -> coordinate, for numeric columns (tables).
        categorical: name -> (start, categories), for categorical feature columns (tables).
        integer: bool ``[dim]``, coordinates that decode to whole numbers.
    """

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.image = isinstance(schema, ImageSchema)
        enc = make_encoder(schema)
        self.dim = enc.dim
        self.offset = np.zeros(self.dim)
        self.scale = np.ones(self.dim)
        self.low = np.full(self.dim, -np.inf)
        self.high = np.full(self.dim, np.inf)
        self.integer = np.zeros(self.dim, dtype=bool)
        self.numeric: dict[str, int] = {}
        self.categorical: dict[str, tuple[int, tuple]] = {}
        if self.image:
            self._set_affine(slice(None), schema.low, schema.high)
            return
        for b in enc.blocks:
            c = schema.column(b.name)
            if isinstance(c, NumericColumn):
                self.numeric[c.name] = b.start
                self._set_affine(b.start, c.low, c.high)
                self.integer[b.start] = c.integer
            else:
                self.categorical[c.name] = (b.start, c.categories)
                self.low[b.start:b.start + b.size], self.high[b.start:b.start + b.size] = 0.0, 1.0

    def _set_affine(self, where, low: float, high: float) -> None:
        self.offset[where] = (low + high) / 2.0
        self.scale[where] = (high - low) / 2.0
        self.low[where], self.high[where] = low, high

    # ---- maps
    def to_units(self, x: torch.Tensor) -> torch.Tensor:
        """Encoded ``[n, ...]`` -> units ``[n, dim]`` (differentiable; unclipped)."""
        flat = x.reshape(x.shape[0], -1)
        return torch.as_tensor(self.offset, dtype=flat.dtype, device=flat.device) + \
            torch.as_tensor(self.scale, dtype=flat.dtype, device=flat.device) * flat

    def from_units(self, u: torch.Tensor) -> torch.Tensor:
        """Units ``[n, dim]`` -> encoded ``[n, dim]``."""
        return (u - torch.as_tensor(self.offset, dtype=u.dtype, device=u.device)) / \
            torch.as_tensor(self.scale, dtype=u.dtype, device=u.device)

    def data_units(self, data: Data) -> torch.Tensor:
        """Decoded samples (a DataFrame or ImageData) in units, float64 ``[n, dim]``: numbers as
        written, categories one-hot. What the guarantee is checked on."""
        enc = make_encoder(self.schema)
        x, _ = enc.transform(data)  # (validates)
        if self.image:  # the values as a file stores them: float32, without a round trip through [-1, 1]
            return torch.as_tensor(np.asarray(data.x, dtype=np.float32).astype(np.float64).reshape(len(x), -1))
        u = self.to_units(torch.as_tensor(x, dtype=torch.float64))
        if not self.image:  # the numbers exactly as decoded, not scaled back and forth
            for name, i in self.numeric.items():
                u[:, i] = torch.as_tensor(np.array(data[name], dtype=np.float64))
        return u

    def units_to_data(self, u: torch.Tensor, labels: np.ndarray | None) -> Data:
        """Units back to decoded samples (numbers clipped to their bounds, integers rounded,
        categories by argmax), exactly as the sampler decodes."""
        enc = make_encoder(self.schema)
        u = u.detach().to(torch.float64).cpu()
        if self.image:  # stored as float32 (what .npz writes): the values checked are the values kept
            v = np.clip(u.numpy().reshape((len(u),) + self.schema.shape), self.schema.low, self.schema.high)
            return ImageData(v.astype(np.float32).astype(np.float64), labels)
        df = enc.inverse_transform(self.from_units(u).numpy(), labels)
        for name, i in self.numeric.items():  # exact numbers, not a float round trip through [-1, 1]
            c = self.schema.column(name)
            v = np.clip(u[:, i].numpy(), c.low, c.high)
            df[name] = np.round(v).astype(np.int64) if c.integer else v
        return df

    # ---- where things are
    def coordinate(self, column: str) -> int:
        """The coordinate of a numeric column."""
        if self.image:
            raise ConfigError(f"constraint on column {column!r}: this is an image schema; use column "
                              f"{PIXELS!r} (with a region) or a pixel_mass constraint")
        if column in self.numeric:
            return self.numeric[column]
        if column in self.categorical or column == self.schema.label:
            raise ConfigError(f"column {column!r} is categorical: use an 'allowed' or 'equals' constraint on it")
        raise ConfigError(f"unknown column {column!r} (numeric columns: {sorted(self.numeric)})")

    def category_block(self, column: str) -> tuple[int, tuple]:
        """(start, categories) of a categorical feature column."""
        if column in self.categorical:
            return self.categorical[column]
        if column in self.numeric:
            raise ConfigError(f"column {column!r} is numeric: use a 'range' or 'equals' constraint on it")
        raise ConfigError(f"unknown categorical column {column!r} (categorical columns: "
                          f"{sorted(self.categorical) + ([self.schema.label] if self.schema.label else [])})")

    def category_indices(self, column: str, categories) -> list[int]:
        """Indices of ``categories`` among a column's declared ones (ConfigError for any other)."""
        return _indices(categories, self.category_block(column)[1], f"column {column!r} has no category")

    def pixels(self, region: Region | None) -> np.ndarray:
        """Flat coordinates of a region of the image (all pixels for None)."""
        if not self.image:
            raise ConfigError("regions and pixel constraints apply to image schemas only")
        c, h, w = self.schema.shape
        idx = np.arange(self.dim).reshape(c, h, w)
        if region is None:
            return idx.ravel()
        chans = list(range(c)) if region.channels is None else list(region.channels)
        if any(isinstance(k, bool) or not isinstance(k, int) for k in chans) or len(set(chans)) != len(chans):
            raise ConfigError(f"region channels must be distinct channel indices, got {list(region.channels)}")
        bottom = h if region.bottom is None else region.bottom
        right = w if region.right is None else region.right
        if not (0 <= region.top < bottom <= h and 0 <= region.left < right <= w) or \
                any(not isinstance(k, int) or not 0 <= k < c for k in chans) or not chans:
            raise ConfigError(f"region {region.to_dict()} is not inside the {c} x {h} x {w} image (or is empty)")
        return idx[chans][:, region.top:bottom, region.left:right].ravel()

    def is_label(self, column: str) -> bool:
        return column == self.schema.label or (self.image and column == "label")

    def label_indices(self, categories) -> list[int]:
        return _indices(categories, self.schema.classes or (), "the label has no class")


def _indices(values, declared, missing: str) -> list[int]:
    """Positions of ``values`` among ``declared`` (ConfigError ``missing value`` for any other)."""
    keys = {category_key(c): i for i, c in enumerate(declared)}
    for v in values:
        if category_key(v) not in keys:
            raise ConfigError(f"{missing} {v!r} (declared: {list(declared)[:10]})")
    return [keys[category_key(v)] for v in values]

