"""Reading a user's classifier from a file, for ``trustgen explain --classifier``.

* ``.pt``: a :class:`~trustgen.explain.classifier.SchemaClassifier` written by its ``save``
  (tensors and plain values: loading runs no code);
* ``.pt2``: a torch module saved with ``torch.export.save`` (a graph of tensor operations, on
  the data's units; gradient path). ``torch.export.load`` unpickles parts of the file that it
  cannot read otherwise, so **loading a .pt2 can run code** too;
* ``.pkl`` / ``.pickle`` / ``.joblib``: a pickled scikit-learn model or pipeline with
  ``predict_proba`` (black-box path). **Loading a pickle runs whatever code it holds**.

The last two are refused unless the caller says the file is trusted (``--trust-pickle``). A
torch classifier is then run once on two records of zeros in the schema's units: it must return
``[2, k]`` logits with ``k >= 2`` (a one-line error otherwise, before any search).
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from trustgen.constraints.space import Space
from trustgen.data.schema import Schema
from trustgen.errors import ConfigError

PICKLES = (".pkl", ".pickle", ".joblib")
KINDS = "a .pt written by SchemaClassifier.save, a .pt2 from torch.export.save (with --trust-pickle), or a " \
        "pickled scikit-learn model (.pkl/.joblib, with --trust-pickle)"


def read_classifier(path: str | Path, schema: Schema, *, trust_pickle: bool = False):
    """The classifier in ``path`` (module docstring), checked against ``schema``: a torch module
    or an object with ``predict_proba``."""
    p = Path(path)
    suffix = p.suffix.lower()
    if not p.is_file():
        raise ConfigError(f"--classifier {str(path)!r} is not a file")
    if suffix in PICKLES:
        if not trust_pickle:
            raise ConfigError(f"--classifier {str(path)!r} is a pickle, and loading a pickle runs the code inside it: "
                              "pass --trust-pickle only for a file you made or trust")
        model = _unpickle(p)
    elif suffix == ".pt2":
        import torch

        if not trust_pickle:
            raise ConfigError(f"--classifier {str(path)!r} is an exported program, and torch.export.load unpickles "
                              "parts of it, which can run code: pass --trust-pickle only for a file you made or trust")
        try:
            model = torch.export.load(str(p)).module()
        except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file; one line says which
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(f"--classifier {str(path)!r}: cannot load the exported program: {first[:200]}") from None
    elif suffix == ".pt":
        from trustgen.errors import RunError
        from trustgen.explain.classifier import load_classifier

        try:
            model = load_classifier(p)
        except RunError as e:
            raise ConfigError(str(e)) from None
        if model.space.dim != Space(schema).dim or _plain(model.schema) != _plain(schema):
            raise ConfigError(f"--classifier {str(path)!r} was fitted on another schema than the run's")
    else:
        raise ConfigError(f"--classifier {str(path)!r}: unknown kind of file; give {KINDS}")
    if not isinstance(model, nn.Module) and not callable(getattr(model, "predict_proba", None)):
        raise ConfigError(f"--classifier {str(path)!r} holds a {type(model).__name__}, which has no predict_proba")
    if isinstance(model, nn.Module):
        _probe(model, Space(schema).dim, path)
    return model


def _probe(model: nn.Module, dim: int, path) -> None:
    """A torch classifier maps units ``[n, dim]`` to logits ``[n, k]``, ``k >= 2``: checked on
    two records of zeros (no data read), so a wrong file fails here in one line."""
    import torch

    from trustgen.explain.scorer import evaluation_mode

    evaluation_mode(model)
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, dim))
    except Exception as e:  # noqa: BLE001 - a module of another shape fails in many ways
        raise ConfigError(f"--classifier {str(path)!r} does not take the run's records ([n, {dim}] units): "
                          f"{type(e).__name__}") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 2 or out.shape[1] < 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"--classifier {str(path)!r} returns {shape} for 2 records: expected [2, k] logits, k >= 2")


def _plain(schema: Schema) -> str:
    import json

    from trustgen.io import json_value

    return json.dumps(json_value(schema.to_dict()), sort_keys=True)


def _unpickle(p: Path):
    try:
        if p.suffix.lower() == ".joblib":
            import joblib

            return joblib.load(p)
        import pickle

        with open(p, "rb") as f:
            return pickle.load(f)  # noqa: S301 - the caller passed trust_pickle
    except Exception as e:  # noqa: BLE001 - unpickling raises anything its code raises
        raise ConfigError(f"--classifier {str(p)!r}: cannot unpickle it: {type(e).__name__}: "
                          f"{str(e).splitlines()[0][:200] if str(e) else ''}") from None


__all__ = ["KINDS", "PICKLES", "read_classifier"]
