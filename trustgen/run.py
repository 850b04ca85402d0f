"""A Run: everything a later stage needs, saved as one directory.

Layout of a run directory::

    run.json          family, model options, training settings, data spec, label prior, caveats
    schema.json       the schema (the encoder is rebuilt from it exactly)
    model.pt          the model's state_dict (loaded with weights_only=True: never runs code)
    train_log.jsonl   smoothed losses every ``log_every`` steps
    checkpoint.pt     training state for resume (optimisers, RNG streams, data order)
    privacy.json      the privacy report (see trustgen.privacy)

Every file is written atomically (temporary file + rename).

Example:
    >>> run = train("breast_cancer", "vae", TrainConfig(steps=5, progress=False), out=None)  # doctest: +SKIP
    >>> Run.load("runs/bc").sample(10, seed=0).data.shape  # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

import trustgen
from trustgen.data.encoders import Data, make_encoder
from trustgen.data.loaders import load_data
from trustgen.data.schema import Schema, load_schema, save_schema
from trustgen.errors import RunError
from trustgen.io import atomic_torch_save, atomic_write_text, safe_torch_load
from trustgen.models import GenerativeModel, build_model
from trustgen.models.nets import DataSpec
from trustgen.privacy.dp_sgd import PrivacyConfig
from trustgen.privacy.report import PrivacyReport
from trustgen.training.trainer import TrainConfig, Trainer, resolve_device

RUN_FORMAT = 1


@dataclass
class Run:
    """A trained model with its schema, settings, log and privacy report."""

    model: GenerativeModel
    schema: Schema
    train_config: TrainConfig
    label_prior: list | None = None
    history: list = field(default_factory=list)
    privacy: PrivacyReport | None = None
    caveats: list = field(default_factory=list)
    data_name: str = ""
    path: Path | None = None

    @property
    def family(self) -> str:
        return self.model.family

    @property
    def encoder(self):
        return make_encoder(self.schema)

    def metadata(self) -> dict:
        return {
            "format": RUN_FORMAT, "trustgen_version": trustgen.__version__, "family": self.family,
            "model_options": self.model.config_dict(), "data_spec": self.model.spec.to_dict(),
            "train_config": asdict(self.train_config), "label_prior": self.label_prior,
            "caveats": list(self.caveats), "data": self.data_name,
        }

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        atomic_torch_save(state, p / "model.pt")
        save_schema(self.schema, p / "schema.json")
        atomic_write_text(p / "train_log.jsonl", "".join(json.dumps(h) + "\n" for h in self.history))
        if self.privacy is not None:
            self.privacy.to_json(p / "privacy.json")
        # run.json last: its presence marks a complete run directory.
        atomic_write_text(p / "run.json", json.dumps(self.metadata(), indent=2) + "\n")
        self.path = p
        return p

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "Run":
        p = Path(path)
        meta_file = p / "run.json"
        if not meta_file.is_file():
            raise RunError(f"{str(p)!r} is not a trustgen run directory (no run.json); train one with `trustgen train`")
        try:
            meta = json.loads(meta_file.read_text())
        except json.JSONDecodeError as e:
            raise RunError(f"{str(meta_file)!r} is corrupt: {e}") from e
        if meta.get("format") != RUN_FORMAT:
            raise RunError(f"run format {meta.get('format')} is not supported by this trustgen (expects {RUN_FORMAT})")
        for f in ("model.pt", "schema.json"):
            if not (p / f).is_file():
                raise RunError(f"run directory {str(p)!r} is incomplete: {f} is missing")
        schema = load_schema(p / "schema.json")
        spec = DataSpec.from_dict(meta["data_spec"])
        if spec != DataSpec.from_encoder(make_encoder(schema)):
            raise RunError(f"schema.json in {str(p)!r} does not match the model's data layout")
        model = build_model(meta["family"], spec, meta["model_options"])
        model.load_state_dict(safe_torch_load(p / "model.pt"))
        model.to(resolve_device(device)).eval()
        history = []
        if (p / "train_log.jsonl").is_file():
            history = [json.loads(line) for line in (p / "train_log.jsonl").read_text().splitlines() if line]
        privacy = PrivacyReport.from_json(p / "privacy.json") if (p / "privacy.json").is_file() else None
        return cls(model, schema, TrainConfig(**meta["train_config"]), meta.get("label_prior"), history,
                   privacy, meta.get("caveats", []), meta.get("data", ""), p)

    def sample(self, n: int, *, labels: Any = None, seed: int | None = None):
        """Shortcut for ``Sampler(self).sample(...)``."""
        from trustgen.sampling.sampler import Sampler  # sampling sits after runs in the flow

        return Sampler(self).sample(n, labels=labels, seed=seed)


def encode_tensors(data: Data, schema: Schema) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Validate and encode ``data`` to float32 model tensors."""
    x, y = make_encoder(schema).transform(data)
    return torch.as_tensor(x, dtype=torch.float32), None if y is None else torch.as_tensor(y)


def train(data: str | Path | Data, family: str, config: TrainConfig | None = None, *,
          schema: Schema | str | Path | None = None, model_options: dict | None = None,
          out: str | Path | None = None, resume: bool = False, privacy: PrivacyConfig | None = None) -> Run:
    """Load, validate, encode, train and (if ``out``) save a run. The main Python entry point.

    Args:
        data: a built-in dataset name, a CSV/NPZ path, or already-loaded data (then ``schema``
            is required).
        family: ``"vae"``, ``"gan"`` or ``"diffusion"``.
        out: run directory; checkpoints go to ``out/checkpoint.pt`` and ``resume=True``
            continues from there after an interruption.
        privacy: train with DP-SGD to this (epsilon, delta); None trains without privacy.
    """
    config = config or TrainConfig()
    config.validate()
    if isinstance(data, (str, Path)):
        name = str(data)
        data, schema = load_data(data, schema)
    else:
        if schema is None:
            raise RunError("pass the schema together with in-memory data")
        if isinstance(schema, (str, Path)):
            schema = load_schema(schema)
        name = "in-memory"
    x, y = encode_tensors(data, schema)
    options = dict(model_options or {})
    if privacy is not None and family == "gan":
        options.setdefault("r1_gamma", 0.0)  # Opacus cannot clip a gradient penalty per example
    # Initial weights from the run's seed, without touching the caller's global RNG state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_model(family, DataSpec.from_encoder(make_encoder(schema)), options)
    caveats = []
    if schema.source == "data-derived":
        if privacy is not None:
            import warnings

            warnings.warn("DP training with a data-derived schema: its bounds and categories were read from "
                          "the private rows and are released without privacy. Declare them from public "
                          "knowledge (set \"source\": \"declared\") for an end-to-end guarantee.", stacklevel=2)
        caveats.append("The schema was derived from the private data (bounds/categories read from the rows); "
                       "those values are released without differential privacy.")
    prior = None
    if y is not None and privacy is not None:
        prior = [1.0 / schema.n_classes] * schema.n_classes
        caveats.append("Labels are sampled uniformly: the class frequencies of the private data are not "
                       "released (they would need their own privacy budget).")
    elif y is not None:
        counts = torch.bincount(y, minlength=schema.n_classes).double()
        prior = (counts / counts.sum()).tolist()
        caveats.append("The label prior used for sampling is the empirical class frequency of the training data "
                       "(computed outside any DP mechanism).")
    ckpt = None if out is None else Path(out) / "checkpoint.pt"
    if out is not None and not resume and ckpt.exists():
        ckpt.unlink()  # a fresh run must not silently continue an old one
    result = Trainer(model, config, privacy=privacy).fit(x, y, checkpoint=ckpt, resume=resume,
                                                         label_prior=None if prior is None else torch.tensor(prior))
    n = len(x)
    if result.privacy is not None:
        report = result.privacy
        report.caveats.extend(caveats)
    else:
        report = PrivacyReport.non_private(steps=result.steps, epochs=result.steps * config.batch_size / n,
                                           sample_rate=min(1.0, config.batch_size / n), caveats=caveats)
    run = Run(model, schema, config, prior, result.history, report, caveats, name)
    from trustgen.training.trainer import dist_info

    if out is not None and dist_info()[0] == 0:  # one writer when several processes train
        run.save(out)
    return run

