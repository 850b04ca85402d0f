"""A small torch classifier on a schema's units, for explanations: differentiable, so the
gradient path (counterfactual search, Integrated Gradients) applies to it.

Its inputs are the data's units (numbers as they are, categories one-hot, images flattened);
inside, each coordinate is scaled by the schema's public bounds (no data statistic).
``predict_proba`` takes records (a DataFrame or ImageData), so model-agnostic explainers
(DiCE) can call it too.

``bayesian=True`` makes every layer mean-field (:mod:`trustgen.models.bayes`), fitted by
variational inference (the cross-entropy of one weight draw per step plus ``KL / n``): its
predictions average posterior draws, and CLUE can explain its uncertainty.

``save`` writes tensors and plain values only (``torch.load(weights_only=True)`` reads it back,
running no code from the file); :func:`load_classifier` reads it.

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
from trustgen.models.bayes import RHO_INIT, bayes_mlp, resample_weights, use_posterior_mean, weight_kl

FORMAT = "trustgen-classifier-1"


class SchemaClassifier(nn.Module):
    """An MLP (one hidden layer of ``hidden`` units) from units ``[n, dim]`` to ``n_classes`` logits,
    predicting the schema's label by default."""

    def __init__(self, schema: Schema, n_classes: int | None = None, hidden: int = 32, *, bayesian: bool = False,
                 prior_sigma: float = 1.0) -> None:
        super().__init__()
        self.schema = schema
        self.space = Space(schema)
        k = schema.n_classes if n_classes is None else n_classes
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise ConfigError("a classifier needs at least 2 classes (a schema with a label, or n_classes)")
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise ConfigError(f"hidden must be a positive integer, got {hidden!r}")
        self.config = {"n_classes": k, "hidden": hidden, "bayesian": bool(bayesian), "prior_sigma": float(prior_sigma)}
        if bayesian:
            self.net = bayes_mlp([self.space.dim, hidden, k], nn.ReLU, prior_sigma=prior_sigma, bayesian="all")
        else:
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
            for name, p in self.net.named_parameters():
                if name.endswith("rho"):
                    p.fill_(RHO_INIT)
                else:
                    p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) / np.sqrt(p.shape[-1]))
        opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        self.train()
        for _ in range(steps):
            opt.zero_grad()
            resample_weights(self.net, gen)  # a no-op without mean-field layers
            loss = F.cross_entropy(self(u), t) + weight_kl(self.net) / len(u)
            loss.backward()
            opt.step()
        use_posterior_mean(self.net)
        return self.eval()

    @property
    def bayesian(self) -> bool:
        return self.config["bayesian"]

    @torch.no_grad()
    def predict_proba(self, data: Data, *, draws: int = 32, seed: int = 0) -> np.ndarray:
        """Class probabilities ``[n, k]`` of records (a DataFrame may hold only the feature
        columns); a Bayesian classifier averages ``draws`` seeded posterior draws."""
        from trustgen.explain.scorer import TorchScorer

        if hasattr(data, "columns") and self.schema.label is not None and self.schema.label not in data.columns:
            data = data.assign(**{self.schema.label: self.schema.classes[0]})  # a placeholder, never read
        u = self.units(data).to(self.offset.device)
        return TorchScorer(self, self.space, draws=draws, seed=seed).probs(self.space.from_units(u)).cpu().numpy()

    def save(self, path) -> None:
        """Write the classifier (its schema, sizes and weights; tensors and plain values only)."""
        import json

        from trustgen.io import atomic_torch_save, json_value

        schema = json.dumps(json_value(self.schema.to_dict()))  # text: weights_only reads no numpy scalars
        atomic_torch_save({"format": FORMAT, "schema": schema, "config": self.config,
                           "state": {k: v.detach().cpu() for k, v in self.state_dict().items()}}, path)


def load_classifier(path) -> SchemaClassifier:
    """A classifier written by :meth:`SchemaClassifier.save` (no code runs from the file)."""
    import json

    from trustgen.data.schema import schema_from_dict
    from trustgen.io import safe_torch_load

    hint = "write it with SchemaClassifier.save"
    obj = safe_torch_load(path, what="classifier file", hint=hint)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ConfigError(f"{str(path)!r} is not a trustgen classifier file ({FORMAT}); {hint}")
    try:
        clf = SchemaClassifier(schema_from_dict(json.loads(obj["schema"])), **obj["config"])
        clf.load_state_dict(obj["state"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise ConfigError(f"classifier file {str(path)!r} is damaged: {str(e).splitlines()[0][:200]}") from None
    return clf.eval()


__all__ = ["SchemaClassifier", "load_classifier"]
