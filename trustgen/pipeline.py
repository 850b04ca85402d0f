"""The training pipeline: the one module that knows every stage.

``train`` loads and validates the data against its schema, encodes it, builds the model, trains
it (with DP-SGD when asked) and saves the :class:`~trustgen.run.Run`. Every other module knows
only the stages before it (``tests/test_layering.py``).

Example:
    >>> from trustgen.training import TrainConfig
    >>> run = train("breast_cancer", "vae", TrainConfig(steps=5, progress=False))  # doctest: +SKIP
    >>> from trustgen.sampling import Sampler
    >>> Sampler(run).sample(10, seed=0).data.shape  # doctest: +SKIP
    (10, 31)
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import warnings
from dataclasses import asdict
from pathlib import Path

import torch

from trustgen.data.encoders import Data, fit_to_domain, make_encoder
from trustgen.data.loaders import check_record_count, load_data
from trustgen.data.schema import Schema, load_schema
from trustgen.errors import RunError, TrustgenError
from trustgen.io import directory_lock, missing_ancestors, recover_directory, remove_empty, remove_stale_temporaries
from trustgen.models import build_model, split_sampling_options
from trustgen.models.nets import DataSpec
from trustgen.privacy.config import PrivacyConfig
from trustgen.privacy.marginal_histogram import NOISE_LIMIT, PAIR_WEIGHT, exact_marginals, marginal_layout, pair_layout
from trustgen.privacy.report import PrivacyReport
from trustgen.run import Run, TrainingData
from trustgen.runtime import barrier, is_main_process
from trustgen.sampling.config import SamplerConfig
from trustgen.training import TrainConfig, Trainer

DATA_DERIVED_SCHEMA_CAVEAT = ("The schema was derived from the private data (bounds/categories read from the rows); "
                              "those values are released without differential privacy, so the run has no "
                              "end-to-end guarantee (preprocessing_epsilon = inf). Declare the domain from public "
                              "knowledge and set \"source\": \"declared\" for one.")


def dp_schema_caveats(schema: Schema) -> list[str]:
    """What a run on a DP-estimated schema (``source="dp"``) must say about it."""
    if schema.source != "dp":
        return []
    seed = (" Its noise came from a caller's fixed seed (tests only): that part of the guarantee holds only "
            "while the seed stays secret.") if schema.dp.fixed_seed else ""
    return [f"The schema's bounds and categories were estimated with pure epsilon-DP (epsilon "
            f"{schema.dp.epsilon:g}, `trustgen schema infer --epsilon`); in a DP run that spend is the report's "
            "preprocessing_epsilon, part of the total. Numbers outside its bounds were clipped to them and rows "
            "whose category it did not keep were dropped, each row on its own (no privacy cost); how many is not "
            "reported, as that count is private." + seed]


def encode_tensors(data: Data, schema: Schema) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Validate and encode ``data`` to float32 model tensors."""
    x, y = make_encoder(schema).transform(data)
    return torch.as_tensor(x, dtype=torch.float32), None if y is None else torch.as_tensor(y)


def _label_prior(y: torch.Tensor | None, schema: Schema, private: bool) -> list | None:
    """The class probabilities to train with, known before training: the empirical frequencies
    without DP; None under DP (the trainer releases the DP label histogram, or none)."""
    if y is None or private:
        return None
    counts = torch.bincount(y, minlength=schema.n_classes).double()
    return (counts / counts.sum()).tolist()


def _label_prior_caveat(y: torch.Tensor | None, report: PrivacyReport | None) -> list[str]:
    """Where the run's label prior comes from (``report``: the DP report, None without DP)."""
    if y is None:
        return []
    if report is None:
        return ["The label prior used for sampling is the empirical class frequency of the training data "
                "(computed outside any DP mechanism)."]
    if report.label_noise_multiplier > 0:
        return [f"The label prior used for sampling is a DP histogram of the class counts (Gaussian noise, "
                f"noise multiplier {report.label_noise_multiplier:.4g}, L2 sensitivity 1; epsilon "
                f"{report.label_epsilon:.4g} alone, label_budget {report.share_text('label')}), composed "
                "with DP-SGD in the same accountant, so epsilon covers it. Noisy counts below 0 are set to 0 (a "
                "rare class may get probability 0), then normalised."]
    return ["Labels are sampled uniformly: the class frequencies of the private data are not released "
            "(label_budget = 0; give them a share of the budget with label_budget > 0)."]


def _marginal_caveat(marginals: dict | None, report: PrivacyReport | None) -> list[str]:
    """Where the marginals that sampling corrects towards come from."""
    if marginals is None:
        return []
    what = "1-way marginals" + (f" and {len(marginals['pair_counts'])} 2-way tables (every pair of columns)"
                                if "pair_counts" in marginals else "")
    if report is None:
        return [f"Sampling corrects the samples towards the {what} of the columns, counted on the "
                "training data (outside any DP mechanism) and stored in run.json."]
    return [f"Sampling corrects the samples towards a DP histogram of the columns' {what} "
            f"(Gaussian noise, noise multiplier {report.marginal_noise_multiplier:.4g} on sensitivity "
            f"sqrt(columns + {PAIR_WEIGHT:g}^2 pairs); epsilon {report.marginal_epsilon:.4g} alone, "
            f"marginal_budget {report.share_text('marginal')}), "
            "composed with DP-SGD in the same accountant, so epsilon covers it; stored in run.json."]


def _unspent_share_caveat(privacy: PrivacyConfig | None, report: PrivacyReport | None, layout: list) -> list[str]:
    """A share of epsilon the user stated for the marginals that the plan did not spend."""
    stated = None if privacy is None else privacy.marginal_budget
    if report is None or not stated or report.marginal_budget > 0:
        return []
    if not layout:
        return [f"The stated marginal_budget {stated:g} was not spent: this data has no counted columns "
                "(images), so DP-SGD kept that share of epsilon."]
    return [f"The stated marginal_budget {stated:g} was not spent: on this table its noise would move the "
            f"columns' marginals by more than {NOISE_LIMIT:g} on average (total variation, from public "
            "inputs), so nothing was released and DP-SGD kept that share of epsilon."]


PRIVATE_STATE_DIR = ".private"  # resume state: owner-only, never part of what a run releases


def resume_checkpoint(out: Path, resume: bool) -> Path:
    """The checkpoint path of run directory ``out``, in its owner-only ``.private/`` folder (made
    here); stale temporaries are swept, and a fresh run drops an old checkpoint."""
    state = out / PRIVATE_STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o700)
    if is_main_process():  # the lock holder: no other writer's staging can be in progress
        recover_directory(out)  # copies a killed save left beside it (one may hold an old checkpoint)
    for d in (out, state):
        remove_stale_temporaries(d)  # a half-written checkpoint holds the same secrets as a whole one
    ckpt = state / "checkpoint.pt"
    legacy = out / "checkpoint.pt"  # where runs written before kept it
    if legacy.exists():
        if resume and not ckpt.exists():
            legacy.replace(ckpt)
        else:
            legacy.unlink()
    if not resume and ckpt.exists():
        ckpt.unlink()  # a fresh run must not silently continue an old one
    return ckpt


def remove_unstarted_state(out: Path, created: bool) -> None:
    """A training that failed before its first checkpoint leaves nothing: its empty (or only
    half-written) resume folder goes, and ``out`` too when this training made it."""
    state = out / PRIVATE_STATE_DIR
    if state.is_dir() and all(p.name.endswith(".tmp") for p in state.iterdir()):
        shutil.rmtree(state, ignore_errors=True)  # a half-written checkpoint holds the same secrets
    if created and out.is_dir() and not any(out.iterdir()):
        out.rmdir()


def remove_training_state(out: Path) -> None:
    """After a DP run is saved: no secret training state (checkpoint, half-written temporaries,
    other ranks' checkpoints) may remain in the released directory. Verified, not assumed."""
    shutil.rmtree(out / PRIVATE_STATE_DIR, ignore_errors=True)
    remove_stale_temporaries(out)
    recover_directory(out)  # the replaced copy beside it held this training's checkpoint (the key)
    left = [p.name for p in out.iterdir() if p.name == PRIVATE_STATE_DIR or p.name.endswith(".tmp")
            or p.name.startswith("checkpoint.pt")]
    left += [p.name for p in out.parent.glob(f".{out.name}.*") if p.suffix in (".staging", ".replaced")]
    if left:
        raise RunError(f"secret training state remains in {str(out)!r}: {left}; delete it before sharing the run")


def check_run_directory(out: Path, *, resume: bool, overwrite: bool, inputs: tuple[Path, ...] = ()) -> None:
    """What training into ``out`` may replace, decided before any work (and before any process
    writes: every rank decides on the same state).

    A fresh training needs a new or empty directory, or ``overwrite``; ``resume`` needs the
    checkpoint of an interrupted training. A finished DP run is a release that claims its
    epsilon: only an explicit ``overwrite`` replaces it (resuming it would train a second model
    that spends a new budget). ``overwrite`` never replaces a directory that holds the current
    directory or one of the ``inputs`` (the data or the schema being read).
    """
    if resume and overwrite:
        raise RunError("--resume continues the training in --out and --overwrite replaces it: give one of them")
    if not out.exists():
        if resume:
            raise RunError(f"nothing to resume: {str(out)!r} does not exist; train without --resume")
        return
    state = out / PRIVATE_STATE_DIR
    checkpoint = any((d / "checkpoint.pt").exists() for d in (out, state))
    # What a training killed before its first checkpoint leaves is not worth protecting.
    held = sorted(p.name for p in out.iterdir() if not p.name.endswith(".tmp")
                  and not (p.name == PRIVATE_STATE_DIR and not checkpoint))
    finished = (out / "run.json").is_file()
    private = finished and (out / "privacy.json").is_file() and _claims_privacy(out / "privacy.json")
    if resume:
        if not checkpoint:
            why = " (a finished DP run keeps none: its checkpoint held the noise key)" if private else ""
            raise RunError(f"nothing to resume in {str(out)!r}: it holds no checkpoint{why}; train without --resume"
                           " into a new --out")
        return
    if not held:
        return
    if overwrite:
        here = out.resolve()
        for p in (Path.cwd(), *inputs):
            if p.resolve() == here or here in p.resolve().parents:
                raise RunError(f"--overwrite would delete {str(out)!r}, which holds {str(p)!r}: choose another --out")
        return
    if private:
        raise RunError(f"{str(out)!r} holds a finished differentially private run: training into it would replace "
                       "the released model with a second one that spends a new privacy budget. Train into a new "
                       "--out, or pass --overwrite to replace it (and count both budgets if both were released).")
    if finished:
        raise RunError(f"{str(out)!r} holds a finished run: pass --overwrite to replace it, or choose a new --out")
    if checkpoint:
        raise RunError(f"{str(out)!r} holds an interrupted training (a checkpoint in {PRIVATE_STATE_DIR}/): pass "
                       "--resume to continue it, or --overwrite to start afresh")
    shown = ", ".join(held[:3]) + (", ..." if len(held) > 3 else "")
    raise RunError(f"{str(out)!r} is not a trustgen run and is not empty (holds {shown}): choose a new or empty "
                   "--out, or pass --overwrite to replace it (its contents are deleted)")


def _claims_privacy(report: Path) -> bool:
    try:
        return PrivacyReport.from_json(report).is_private
    except TrustgenError:
        return True  # an unreadable report of a finished run: do not guess, protect it


def train(data: str | Path | Data, family: str, config: TrainConfig | None = None, *,
          schema: Schema | str | Path | None = None, model_options: dict | None = None,
          out: str | Path | None = None, resume: bool = False, overwrite: bool = False,
          privacy: PrivacyConfig | None = None) -> Run:
    """Load, validate, encode, train and (if ``out``) save a run. The main Python entry point.

    Args:
        data: a built-in dataset name, a CSV/NPZ path, or already-loaded data (then ``schema``
            is required).
        family: ``"vae"``, ``"gan"`` or ``"diffusion"``.
        model_options: the family's config fields; sampler settings given here (``sampler``,
            ``sample_steps``, ``guidance``) become the run's sampling defaults.
        out: run directory; checkpoints go to ``out/.private/checkpoint.pt`` (owner-only) and
            ``resume=True`` continues from there after an interruption. A DP run removes that
            folder once it is saved: its checkpoint holds the secret noise key. An existing
            ``out`` that is not empty is replaced only with ``overwrite=True``
            (:func:`check_run_directory`).
        privacy: train with DP-SGD to this (epsilon, delta); None trains without privacy.

    While it trains into ``out``, the directory is locked: a second training into it is refused.
    """
    kwargs = dict(schema=schema, model_options=model_options, out=out, resume=resume, overwrite=overwrite,
                  privacy=privacy)
    if out is None or not is_main_process():  # one lock holder when several processes train
        return _train(data, family, config, **kwargs)
    made = missing_ancestors(out)  # the lock beside OUT creates them: a refused training takes them away
    try:
        with directory_lock(Path(out)):
            return _train(data, family, config, **kwargs)
    except BaseException:
        remove_empty(made)
        raise


def _train(data: str | Path | Data, family: str, config: TrainConfig | None, *, schema, model_options, out, resume,
           overwrite, privacy) -> Run:
    config = config or TrainConfig()
    config.validate()
    if privacy is not None:
        privacy.validate()  # a bad budget fails before any data is read
    if out is not None:
        inputs = tuple(Path(p) for p in (data, schema) if isinstance(p, (str, Path)) and Path(p).exists())
        check_run_directory(Path(out), resume=resume, overwrite=overwrite, inputs=inputs)
        barrier()  # every process has decided on the directory as it was before any of them writes
    options, sampling = split_sampling_options(family, model_options)
    SamplerConfig.from_dict(sampling)  # bad sampler settings fail before any work
    if isinstance(data, (str, Path)):
        source = data
        data, schema = load_data(data, schema)
        record = TrainingData.of_source(source, private=privacy is not None)
    else:
        if schema is None:
            raise RunError("pass the schema together with in-memory data")
        if isinstance(schema, (str, Path)):
            schema = load_schema(schema)
        data = fit_to_domain(data, schema)  # load_data does this for files
        check_record_count(data, "in-memory data")
        record = TrainingData("in-memory")
    x, y = encode_tensors(data, schema)
    # Initial weights from the run's seed, without touching the caller's global RNG state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_model(family, DataSpec.from_encoder(make_encoder(schema)), options, private=privacy is not None)
    caveats = []
    if schema.source == "data-derived":
        if privacy is not None:
            warnings.warn("DP training with a data-derived schema: its bounds and categories were read from "
                          "the private rows and are released without privacy. Declare them from public "
                          "knowledge (set \"source\": \"declared\") for an end-to-end guarantee.", stacklevel=2)
        caveats.append(DATA_DERIVED_SCHEMA_CAVEAT)
    caveats += dp_schema_caveats(schema)
    prior = _label_prior(y, schema, privacy is not None)
    created = out is not None and not Path(out).exists()
    ckpt = None if out is None else resume_checkpoint(Path(out), resume)
    layout, pairs = marginal_layout(schema), pair_layout(schema)
    try:
        result = Trainer(model, config, privacy=privacy).fit(x, y, checkpoint=ckpt, resume=resume,
                                                             label_prior=None if prior is None else torch.tensor(prior),
                                                             marginal_layout=layout, pair_layout=pairs)
    except BaseException:
        if out is not None and is_main_process():
            remove_unstarted_state(Path(out), created)
        raise
    prior = result.label_prior
    if prior is None and y is not None:  # DP without a label budget: a uniform prior, saved as such
        prior = [1.0 / schema.n_classes] * schema.n_classes
    caveats += _label_prior_caveat(y, result.privacy)
    # the marginals sampling corrects towards: the DP release, or without DP the empirical ones
    marginals = result.marginals if privacy is not None else (exact_marginals(x, layout, y, pairs) if layout else None)
    caveats += _marginal_caveat(marginals, result.privacy) + _unspent_share_caveat(privacy, result.privacy, layout)
    n = len(x)
    if result.privacy is not None:
        report = result.privacy
        report.caveats.extend(caveats)
        if schema.source == "data-derived":
            # The released schema.json carries bounds and categories read from single records:
            # no end-to-end guarantee, whatever training spent (the headline says NONE).
            report = dataclasses.replace(report, preprocessing_epsilon=math.inf)
        elif schema.source == "dp":  # pure-DP preprocessing composes additively (basic composition)
            report = dataclasses.replace(report, preprocessing_epsilon=schema.dp.epsilon)
    else:
        report = PrivacyReport.non_private(steps=result.steps, epochs=result.steps * config.batch_size / n,
                                           sample_rate=min(1.0, config.batch_size / n), caveats=caveats)
    run = Run(model, schema, asdict(config), prior, result.history, report, caveats, record, sampling=sampling,
              marginals=marginals)
    if out is not None and is_main_process():  # one writer when several processes train
        run.save(out, keep=() if privacy is not None else (PRIVATE_STATE_DIR,))  # a DP run keeps no secret state
        if privacy is not None:
            remove_training_state(Path(out))
    return run
