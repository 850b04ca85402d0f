"""A small torch classifier on a schema's units, for explanations: differentiable, so the
gradient path (counterfactual search, Integrated Gradients) applies to it.

Its inputs are the data's units (numbers as they are, categories one-hot, images flattened);
inside, each coordinate is scaled by the schema's public bounds (no data statistic).
``predict_proba`` takes records (a DataFrame or ImageData), so model-agnostic explainers
(DiCE) can call it too.

Example:
    >>> clf = SchemaClassifier(schema, n_classes=2).fit(df)  # doctest: +SKIP
    >>> clf.predict_proba(df.iloc[:3]).shape  # doctest: +SKIP
    (3, 2)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from trustgen.constraints.space import Space
from trustgen.data.encoders import Data, make_encoder
from trustgen.data.schema import Schema
from trustgen.errors import ConfigError


class SchemaClassifier(nn.Module):
    """An MLP (one hidden layer of ``hidden`` units) from units ``[n, dim]`` to ``n_classes`` logits,
    predicting the schema's label by default."""

    def __init__(self, schema: Schema, n_classes: int | None = None, hidden: int = 32) -> None:
        super().__init__()
        self.schema = schema
        self.space = Space(schema)
        k = schema.n_classes if n_classes is None else n_classes
        if k < 2:
            raise ConfigError("a classifier needs at least 2 classes (a schema with a label, or n_classes)")
        self.net = nn.Sequential(nn.Linear(self.space.dim, hidden), nn.ReLU(), nn.Linear(hidden, k))
        self.register_buffer("offset", torch.tensor(self.space.offset, dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(self.space.scale, dtype=torch.float32))

    def forward(self, units: torch.Tensor) -> torch.Tensor:
        return self.net((units.reshape(len(units), -1) - self.offset) / self.scale)

    def units(self, data: Data) -> torch.Tensor:
        """Records -> units ``[n, dim]`` (float32)."""
        return self.space.data_units(data).float()

    def fit(self, data: Data, y=None, *, steps: int = 500, lr: float = 1e-2, seed: int = 0) -> "SchemaClassifier":
        """Full-batch Adam on the cross-entropy (``y``: class indices; default the records' labels)."""
        if y is None:
            y = make_encoder(self.schema).transform(data)[1]
        if y is None:
            raise ConfigError("no labels to fit on: pass y, or records with the schema's label")
        u, t = self.units(data), torch.as_tensor(np.asarray(y), dtype=torch.long)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():  # seeded initialisation, without the global stream
            for p in self.net.parameters():
                p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) / np.sqrt(p.shape[-1]))
        opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            F.cross_entropy(self(u), t).backward()
            opt.step()
        return self.eval()

    @torch.no_grad()
    def predict_proba(self, data: Data) -> np.ndarray:
        """Class probabilities ``[n, k]`` of records (a DataFrame may hold only the feature columns)."""
        if hasattr(data, "columns") and self.schema.label is not None and self.schema.label not in data.columns:
            data = data.assign(**{self.schema.label: self.schema.classes[0]})  # a placeholder, never read
        return torch.softmax(self(self.units(data)), 1).numpy()


__all__ = ["SchemaClassifier"]
