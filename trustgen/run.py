"""A Run: the saved artefact, everything a later stage needs, as one directory.

Layout of a run directory::

    run.json          family, model options, sampling defaults, training settings, data spec,
                      label prior, caveats, and the SHA-256 of every other file (format 3)
    schema.json       the schema (the encoder is rebuilt from it exactly)
    model.pt          the model's state_dict (loaded with weights_only=True: never runs code)
    train_log.jsonl   smoothed losses every ``log_every`` steps
    .private/         resume state (owner-only; removed when a DP run is saved: it holds the secret key)
    privacy.json      the privacy report (see trustgen.privacy)

This module saves, loads and describes runs; it trains nothing and samples nothing
(:func:`trustgen.pipeline.train` makes runs, :class:`trustgen.sampling.Sampler` samples them).
The directory is written whole (staged beside it, then swapped in: a kill leaves the old or the
new complete run, never a mix) under a lock that refuses a second writer, and ``run.json`` binds
the other files by their hashes, so a report copied from another run, or weights from an
interrupted retrain, are refused on load.

Example:
    >>> run = Run.load("runs/bc")  # doctest: +SKIP
    >>> run.family, run.privacy.epsilon  # doctest: +SKIP
    ('vae', 1.0)
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import trustgen
from trustgen.data.encoders import make_encoder
from trustgen.data.schema import Schema, load_schema, save_schema
from trustgen.errors import RunError
from trustgen.io import atomic_torch_save, atomic_write_directory, atomic_write_text, directory_lock, file_sha256, \
    read_json, recover_directory, safe_torch_load
from trustgen.json_fields import Fields, finite_number
from trustgen.models import GenerativeModel, build_model, split_sampling_options
from trustgen.models.nets import DataSpec
from trustgen.privacy.marginal_histogram import marginal_layout, pair_layout
from trustgen.privacy.report import PrivacyReport
from trustgen.runtime import resolve_device

RUN_FORMAT = 3
# Format 1 (before sampling was a stage) kept sampler settings among the model options; formats 1
# and 2 do not bind their files by hash (they load, with a warning).
READABLE_FORMATS = (1, 2, 3)
BOUND_FILES = ("model.pt", "schema.json", "train_log.jsonl", "privacy.json")


@dataclass(frozen=True)
class TrainingData:
    """What a run records about its training data: a name and, for a file, its content hash.

    Never a path: a run travels, and a path in it would be read relative to wherever it is
    opened (``trustgen evaluate`` takes the real data only from ``--real``, and compares its
    hash with this one). ``name`` is the built-in dataset's name, the file's base name, or
    ``"in-memory"``; ``sha256`` is the file's SHA-256 (None for built-in and in-memory data,
    for DP runs, and for runs written before it was recorded, whose ``data`` was a plain string).

    A DP run records no hash: it is computed from every private record outside the DP
    mechanism, and whoever can guess the file but one record (a small domain) confirms that
    record by hashing each guess.

    Example:
        >>> TrainingData.from_json("breast_cancer")
        TrainingData(name='breast_cancer', sha256=None)
    """

    name: str
    sha256: str | None = None

    @classmethod
    def of_source(cls, source: str | Path, *, private: bool) -> "TrainingData":
        """The record of data loaded from ``source`` as :func:`~trustgen.data.loaders.load_data`
        reads it: a built-in dataset by name, a file by its base name and (unless ``private``:
        a DP run) its content hash."""
        from trustgen.data.datasets import BUILTIN

        if str(source) in BUILTIN:
            return cls(str(source))
        return cls(Path(source).name, None if private else file_sha256(source))

    def to_dict(self) -> dict:
        return {"name": self.name, "sha256": self.sha256}

    @classmethod
    def from_json(cls, value) -> "TrainingData":
        """From run.json's ``data``: ``{"name", "sha256"}``, or the plain string older runs hold."""
        if isinstance(value, str):
            return cls(value)
        ok = (isinstance(value, dict) and set(value) == {"name", "sha256"} and isinstance(value["name"], str)
              and (value["sha256"] is None or (isinstance(value["sha256"], str) and len(value["sha256"]) == 64
                                               and all(ch in "0123456789abcdef" for ch in value["sha256"]))))
        if not ok:
            raise RunError(f"run.json's \"data\" must be {{\"name\": STRING, \"sha256\": 64 hex digits or null}}, "
                           f"got {value!r}: the file was not written by trustgen (or was edited)")
        return cls(value["name"], value["sha256"])


@dataclass
class Run:
    """A trained model with its schema, settings, log and privacy report.

    Attributes:
        train_config: the training settings, as saved (a plain dict).
        sampling: default sampler settings (SamplerConfig fields) for this run.
        data: what the run was trained on (:class:`TrainingData`; a plain string, as older
            run.json files hold, is read as a name without hash).
        marginals: 1-way marginals of the feature columns (and pair tables) that sampling corrects towards
            (:mod:`trustgen.privacy.marginal_histogram`: a DP release under DP, whose cost the
            privacy report states; the empirical ones for a run without DP); None: no
            correction.
    """

    model: GenerativeModel
    schema: Schema
    train_config: dict
    label_prior: list | None = None
    history: list = field(default_factory=list)
    privacy: PrivacyReport | None = None
    caveats: list = field(default_factory=list)
    data: TrainingData = TrainingData("in-memory")
    path: Path | None = None
    sampling: dict = field(default_factory=dict)
    marginals: list | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.data, TrainingData):  # run.json's field as read: checked here, for every reader
            self.data = TrainingData.from_json(self.data)

    @property
    def data_name(self) -> str:
        """The training data's recorded name (kept for code written before :class:`TrainingData`)."""
        return self.data.name

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
            "label_prior": self.label_prior, "caveats": list(self.caveats), "data": self.data.to_dict(),
            **({} if self.marginals is None else {"marginals": self.marginals}),
        }

    def save(self, path: str | Path, keep: tuple[str, ...] = ()) -> Path:
        """Write the run to directory ``path`` whole, replacing what is there (the caller decides
        whether replacing is allowed: :func:`trustgen.pipeline.train` refuses a finished DP run).

        ``keep``: names in the existing directory carried over into the new one (the pipeline keeps
        a non-private run's resume state); everything else there is replaced.
        """
        p = Path(path)

        def fill(staging: Path) -> None:
            for name in keep:
                if (p / name).exists():
                    (p / name).rename(staging / name)
            self._write_into(staging)

        atomic_write_directory(p, fill)
        self.path = p
        return p

    def _write_into(self, d: Path) -> None:
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        atomic_torch_save(state, d / "model.pt")
        save_schema(self.schema, d / "schema.json")
        atomic_write_text(d / "train_log.jsonl", "".join(json.dumps(h) + "\n" for h in self.history))
        if self.privacy is not None:
            self.privacy.to_json(d / "privacy.json")
        files = {f: file_sha256(d / f) for f in BOUND_FILES if (d / f).is_file()}
        atomic_write_text(d / "run.json", json.dumps({**self.metadata(), "files": files}, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "Run":
        p = Path(path)
        if not p.exists() and p.parent.is_dir() and any(p.parent.glob(f".{p.name}.*.replaced")):
            with directory_lock(p):
                recover_directory(p)  # a save killed between its two renames left the old run aside
        if not (p / "run.json").is_file():
            raise RunError(f"{str(p)!r} is not a trustgen run directory (no run.json); train one with `trustgen train`")
        meta = read_json(p / "run.json", "run file", RunError, RUN_JSON_HINT, expect=dict)
        _check_run_json(p, meta)
        for f in ("model.pt", "schema.json"):
            if not (p / f).is_file():
                raise RunError(f"run directory {str(p)!r} is incomplete: {f} is missing")
        _check_bound_files(p, meta)
        schema = load_schema(p / "schema.json")
        try:
            spec = DataSpec.from_dict(meta["data_spec"])
        except (KeyError, TypeError, ValueError) as e:
            raise RunError(f"run.json in {str(p)!r} has a malformed data_spec ({e!r}); {RUN_JSON_HINT}") from e
        if spec != DataSpec.from_encoder(make_encoder(schema)):
            raise RunError(f"schema.json in {str(p)!r} does not match the model's data layout")
        _check_label_prior(p, meta.get("label_prior"), schema.n_classes or 0)
        _check_marginals(p, meta.get("marginals"), schema)
        options, legacy_sampling = split_sampling_options(meta["family"], meta["model_options"])
        try:
            model = build_model(meta["family"], spec, options)
        except (TypeError, ValueError) as e:  # ConfigError is a ValueError: one message for both
            raise RunError(f"run.json in {str(p)!r}: its model_options do not build a {meta['family']} model "
                           f"({' '.join(str(e).split())}); {RUN_JSON_HINT}") from e
        state = safe_torch_load(p / "model.pt", what="model weights", hint=RUN_JSON_HINT)
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as e:  # wrong keys or shapes; or not a state dict at all
            raise RunError(f"model.pt in {str(p)!r} does not hold the weights of this run's {meta['family']} model "
                           f"({_weights_mismatch(model, state)}); {RUN_JSON_HINT}") from e
        model.to(resolve_device(device)).eval()
        history = []
        if (p / "train_log.jsonl").is_file():
            history = _read_log(p / "train_log.jsonl")
        privacy = PrivacyReport.from_json(p / "privacy.json") if (p / "privacy.json").is_file() else None
        if privacy is not None and privacy.is_private and (p / ".private").exists():
            warnings.warn(f"{str(p)!r} holds .private/: the resume state of an interrupted training into it, with "
                          "that training's secret noise key. Do not share the directory until it is gone (resume "
                          "the training, or delete .private/).", stacklevel=2)
        return cls(model, schema, dict(meta["train_config"]), meta.get("label_prior"), history, privacy,
                   meta.get("caveats", []), meta.get("data", ""), p, {**legacy_sampling, **meta.get("sampling", {})},
                   meta.get("marginals"))


RUN_JSON_HINT = "re-create the run with `trustgen train`, or restore the directory from a copy"

#: The fields of run.json a load reads, and their JSON types ("data" is read as it is).
RUN_JSON_FIELDS = {"family": "string", "model_options": "object", "data_spec": "object",
                   "train_config": "object"}
RUN_JSON_OPTIONAL = {"sampling": "object", "caveats": "list", "label_prior": "list", "files": "object",
                     "marginals": "object"}


def _check_run_json(p: Path, meta: dict) -> None:
    """run.json has the fields a load reads, of the right JSON types, and a readable format: a
    damaged or hand-edited file is refused in one line before anything is built from it."""
    f = Fields(meta, f"run.json in {str(p)!r}", RunError, RUN_JSON_HINT)
    fmt = f.get("format", "integer")
    if fmt not in READABLE_FORMATS:
        raise RunError(f"run format {fmt} is not supported by this trustgen "
                       f"(reads {', '.join(map(str, READABLE_FORMATS))})")
    for key, kind in RUN_JSON_FIELDS.items():
        f.get(key, kind)
    for key, kind in RUN_JSON_OPTIONAL.items():
        f.get(key, kind, None, nullable=key in ("label_prior", "marginals"))


MAX_COUNT = 1e12  # a (noisy) count of records: beyond this, a damaged file (sums would overflow)


def _check_marginals(p: Path, marginals: object, schema: Schema) -> None:
    """None, or per counted column of the schema one finite count per bin, and the counts'
    noise (finite, >= 0), and where pairs were counted one finite count per cell of each:
    :func:`trustgen.privacy.marginal_histogram.marginals_record`."""
    if marginals is None:
        return
    layout = marginal_layout(schema)
    where = f"run.json in {str(p)!r}: marginals"
    f = Fields(marginals, where, RunError, RUN_JSON_HINT)
    counts, std, records = f.get("counts", "list"), f.get("noise_std", "number"), f.get("records", "integer")
    if len(counts) != len(layout) or not std >= 0 or not records >= 1:
        raise RunError(f"{where} must hold counts of {len(layout)} feature columns, a noise_std >= 0 and records "
                       f">= 1; {RUN_JSON_HINT}")
    if not layout:
        raise RunError(f"{where}: this run's schema has no feature columns to count (images): remove the field; "
                       f"{RUN_JSON_HINT}")
    for c, m in zip(layout, counts):
        _check_counts(m, c.bins, f"{where}: column {c.name!r}")
    if "pair_counts" not in marginals:
        return
    pairs, pair_std = f.get("pair_counts", "list"), f.get("pair_noise_std", "number")
    tables = pair_layout(schema)
    if len(pairs) != len(tables) or not pair_std >= 0:
        raise RunError(f"{where} must hold pair_counts of {len(tables)} pairs of columns and a pair_noise_std >= 0; "
                       f"{RUN_JSON_HINT}")
    for t, m in zip(tables, pairs):
        _check_counts(m, t.cells, f"{where}: pair {t.name!r}")


def _check_counts(m: object, size: int, what: str) -> None:
    """``m`` is a list of ``size`` finite (noisy) counts of at most :data:`MAX_COUNT` in size."""
    if not isinstance(m, list) or len(m) != size or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and finite_number(v) and abs(v) <= MAX_COUNT
            for v in m):
        raise RunError(f"{what} must hold {size} finite counts of at most {MAX_COUNT:g} in size; {RUN_JSON_HINT}")


def _check_label_prior(p: Path, prior: object, n_classes: int) -> None:
    """None, or one finite probability >= 0 per class with a positive sum (what sampling draws from)."""
    if prior is None:
        return
    where = f"run.json in {str(p)!r}: label_prior"
    if not isinstance(prior, list) or len(prior) != n_classes:
        raise RunError(f"{where} must list one probability per class ({n_classes}), got "
                       f"{len(prior) if isinstance(prior, list) else type(prior).__name__}; {RUN_JSON_HINT}")
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and finite_number(v) and v >= 0
                  for v in prior)
    if not numbers or not sum(prior) > 0:
        raise RunError(f"{where} must hold finite numbers >= 0 with a positive sum; {RUN_JSON_HINT}")


def _weights_mismatch(model: GenerativeModel, state: object) -> str:
    """How ``state`` differs from the model's state dict, in a few words (torch lists every key)."""
    if not isinstance(state, dict):
        return f"it holds a {type(state).__name__}, not a state dict"
    want = model.state_dict()
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    shapes = [k for k in want if k in state and getattr(state[k], "shape", None) != want[k].shape]
    parts = [f"{len(ks)} {what}, e.g. {ks[0]!r}" for ks, what in
             ((missing, "missing"), (unexpected, "unexpected"), (shapes, "of another shape")) if ks]
    return "; ".join(parts) or "its tensors do not fit"


def _read_log(path: Path) -> list[dict]:
    """The training log: one JSON object per line, else a RunError naming the line."""
    history = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise RunError(f"training log {str(path)!r} is not UTF-8 text; {RUN_JSON_HINT}") from None
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if not isinstance(entry, dict):
            raise RunError(f"training log {str(path)!r} line {i} is not a JSON object; {RUN_JSON_HINT}")
        history.append(entry)
    return history


def _check_bound_files(p: Path, meta: dict) -> None:
    """Every file of the run is the one ``run.json`` was written with (format 3), or warn that an
    older run's files are not bound."""
    if meta["format"] < 3:
        warnings.warn(f"{str(p)!r} was written by an older trustgen (run format {meta['format']}): its files are "
                      "not bound by hashes, so its privacy report cannot be verified to belong to its model.",
                      stacklevel=3)
        return
    files = meta.get("files")
    if not isinstance(files, dict) or "model.pt" not in files:
        raise RunError(f"run.json in {str(p)!r} lists no file hashes: it was not written by trustgen (or was edited)")
    for name in BOUND_FILES:
        present, recorded = (p / name).is_file(), files.get(name)
        if present and recorded is None:
            raise RunError(f"{name} in {str(p)!r} is not part of this run (run.json does not list it): remove it "
                           "or restore the run's own copy")
        if recorded is not None and not present:
            raise RunError(f"run directory {str(p)!r} is incomplete: {name} is missing")
        if present and file_sha256(p / name) != recorded:
            raise RunError(f"{name} in {str(p)!r} does not belong to this run (its hash differs from the one in "
                           "run.json): it was replaced, edited or copied from another run")
