"""A Run: the saved artefact, everything a later stage needs, as one directory.

Layout of a run directory::

    run.json          family, model options, sampling defaults, training settings, data spec,
                      label prior, caveats
    schema.json       the schema (the encoder is rebuilt from it exactly)
    model.pt          the model's state_dict (loaded with weights_only=True: never runs code)
    train_log.jsonl   smoothed losses every ``log_every`` steps
    .private/         resume state (owner-only; removed when a DP run is saved: it holds the secret key)
    privacy.json      the privacy report (see trustgen.privacy)

This module saves, loads and describes runs; it trains nothing and samples nothing
(:func:`trustgen.pipeline.train` makes runs, :class:`trustgen.sampling.Sampler` samples them).
Every file is written atomically (temporary file + rename).

Example:
    >>> run = Run.load("runs/bc")  # doctest: +SKIP
    >>> run.family, run.privacy.epsilon  # doctest: +SKIP
    ('vae', 1.0)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import trustgen
from trustgen.data.encoders import make_encoder
from trustgen.data.schema import Schema, load_schema, save_schema
from trustgen.errors import RunError
from trustgen.io import atomic_torch_save, atomic_write_text, read_json, safe_torch_load
from trustgen.models import GenerativeModel, build_model, split_sampling_options
from trustgen.models.nets import DataSpec
from trustgen.privacy.report import PrivacyReport
from trustgen.runtime import resolve_device

RUN_FORMAT = 2
# Format 1 (before sampling was a stage) kept sampler settings among the model options.
READABLE_FORMATS = (1, 2)


@dataclass
class Run:
    """A trained model with its schema, settings, log and privacy report.

    Attributes:
        train_config: the training settings, as saved (a plain dict).
        sampling: default sampler settings (SamplerConfig fields) for this run.
    """

    model: GenerativeModel
    schema: Schema
    train_config: dict
    label_prior: list | None = None
    history: list = field(default_factory=list)
    privacy: PrivacyReport | None = None
    caveats: list = field(default_factory=list)
    data_name: str = ""
    path: Path | None = None
    sampling: dict = field(default_factory=dict)

    @property
    def family(self) -> str:
        return self.model.family

    @property
    def encoder(self):
        return make_encoder(self.schema)

    def metadata(self) -> dict:
        return {
            "format": RUN_FORMAT, "trustgen_version": trustgen.__version__, "family": self.family,
            "model_options": self.model.config_dict(), "sampling": dict(self.sampling),
            "data_spec": self.model.spec.to_dict(), "train_config": dict(self.train_config),
            "label_prior": self.label_prior, "caveats": list(self.caveats), "data": self.data_name,
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
        if not (p / "run.json").is_file():
            raise RunError(f"{str(p)!r} is not a trustgen run directory (no run.json); train one with `trustgen train`")
        meta = read_json(p / "run.json", "run file", RunError)
        if meta.get("format") not in READABLE_FORMATS:
            raise RunError(f"run format {meta.get('format')} is not supported by this trustgen "
                           f"(reads {', '.join(map(str, READABLE_FORMATS))})")
        for f in ("model.pt", "schema.json"):
            if not (p / f).is_file():
                raise RunError(f"run directory {str(p)!r} is incomplete: {f} is missing")
        schema = load_schema(p / "schema.json")
        spec = DataSpec.from_dict(meta["data_spec"])
        if spec != DataSpec.from_encoder(make_encoder(schema)):
            raise RunError(f"schema.json in {str(p)!r} does not match the model's data layout")
        options, legacy_sampling = split_sampling_options(meta["family"], meta["model_options"])
        model = build_model(meta["family"], spec, options)
        model.load_state_dict(safe_torch_load(p / "model.pt"))
        model.to(resolve_device(device)).eval()
        history = []
        if (p / "train_log.jsonl").is_file():
            history = [json.loads(line) for line in (p / "train_log.jsonl").read_text().splitlines() if line]
        privacy = PrivacyReport.from_json(p / "privacy.json") if (p / "privacy.json").is_file() else None
        return cls(model, schema, dict(meta["train_config"]), meta.get("label_prior"), history, privacy,
                   meta.get("caveats", []), meta.get("data", ""), p, {**legacy_sampling, **meta.get("sampling", {})})
