"""The ``trustgen`` command. Run ``trustgen --help`` or ``trustgen COMMAND --help``.

Conventions: bad arguments or bad data exit with code 2 and a one-line reason on stderr;
commands that report something accept ``--json`` and then print exactly one JSON object on
stdout (progress bars and logs go to stderr).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path
from typing import Any, Sequence


from trustgen.errors import TrustgenError
from trustgen.limits import (MAX_BATCH_SIZE, MAX_CANARIES, MAX_EPOCHS, MAX_SAMPLER_STEPS, MAX_SAMPLES_DRAWN,
                             MAX_SEED, MAX_STEPS,
                             bounded_number)

FAMILIES = ("vae", "gan", "diffusion")
LABEL_BUDGET_HELP = ("share of epsilon in [0, 1) for DP label frequencies (a Gaussian histogram, composed with "
                     "DP-SGD; default 0.2 on labelled data; 0: uniform labels)")
MARGINAL_BUDGET_HELP = ("share of epsilon in [0, 1) for the DP 1-way marginals of the feature columns (and, on "
                        "narrow tables with enough records, every pair of columns' 2-way table), which "
                        "sampling corrects the samples towards (composed with DP-SGD; default: 0.25, or up to 0.5 "
                        "where a small table needs more; 0: none; nothing is spent where the noise would correct no "
                        "column)")


class _HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default (when it has one and the text does not say it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        shown = not (default is None or default is False or default == [] or default == argparse.SUPPRESS)
        if shown and "default" not in text and action.option_strings:
            text += " (default: %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints the usage too)
        self.exit(2, f"trustgen: error: {message} (see --help)\n")


class _Fail(Exception):
    """A usage error found after parsing: reported like an argparse error."""


def _emit(args: argparse.Namespace, obj: dict, text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(obj))
    else:
        print(text)


def _parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in pairs:
        if "=" not in p:
            raise _Fail(f"--option expects KEY=VALUE, got {p!r}")
        k, v = p.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


# ---------------------------------------------------------------------------------- commands
def cmd_train(args: argparse.Namespace) -> int:
    from trustgen.pipeline import train
    from trustgen.training import TrainConfig

    cfg = TrainConfig(epochs=args.epochs, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                      device=args.device, seed=args.seed, checkpoint_every=args.checkpoint_every,
                      progress=not args.no_progress)
    if args.epsilon is None and (args.delta is not None or args.label_budget is not None
                                 or args.marginal_budget is not None):
        raise _Fail("--delta, --label-budget and --marginal-budget need --epsilon (without --epsilon training is "
                    "not private)")
    privacy = _privacy_config(args)
    if args.distributed:
        cfg.device = _init_distributed(args.device)
    try:
        run = train(args.data, args.model, cfg, schema=args.schema, model_options=_parse_options(args.option),
                    out=args.out, resume=args.resume, overwrite=args.overwrite, privacy=privacy)
    finally:
        if args.distributed:
            import torch.distributed as dist

            dist.destroy_process_group()
    from trustgen.runtime import is_main_process

    if not is_main_process():
        return 0
    last = run.history[-1] if run.history else {}
    eps = run.privacy.epsilon if run.privacy is not None else float("inf")
    total = run.privacy.total_epsilon if run.privacy is not None else float("inf")
    if eps == float("inf"):
        status = "NOT private"
    elif total == float("inf"):
        status = f"training epsilon = {eps:.3f}, but NO end-to-end guarantee: the schema was read from the data"
    elif run.privacy.preprocessing_epsilon > 0:  # a DP schema's spend: show both parts of the total
        status = f"epsilon = {total:.3f} (training {eps:.3f} + DP schema {run.privacy.preprocessing_epsilon:.3f})"
    else:
        status = f"epsilon = {total:.3f}"
    _emit(args, {"run": str(args.out), "family": run.family, "steps": last.get("step"), "final": last,
                 "epsilon": None if eps == float("inf") else eps,
                 "total_epsilon": None if total == float("inf") else total, "caveats": run.caveats},
          f"trained {run.family} on {args.data}: run saved to {args.out} ({status}; see `trustgen privacy {args.out}`)")
    return 0


def _privacy_config(args: argparse.Namespace):
    """The PrivacyConfig of the DP flags (None without --epsilon), validated before any work."""
    from trustgen.privacy.config import DEFAULT_LABEL_BUDGET, PrivacyConfig

    if args.epsilon is None:
        return None
    label_budget = DEFAULT_LABEL_BUDGET if args.label_budget is None else args.label_budget
    privacy = PrivacyConfig(args.epsilon, args.delta, args.max_grad_norm, args.accountant, args.clipping,
                            label_budget=label_budget, marginal_budget=args.marginal_budget)
    privacy.validate()
    return privacy


def _init_distributed(device: str) -> str:
    """Join the process group torchrun set up (gloo on CPU, NCCL on GPUs); returns the device."""
    import os

    import torch
    import torch.distributed as dist

    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise _Fail("--distributed must be launched by torchrun, e.g. torchrun --nproc_per_node 2 -m trustgen train ...")
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
    bad = [n for n in names if n in os.environ and not os.environ[n].isdigit()]
    if bad:
        raise _Fail(f"--distributed: {', '.join(bad)} must be whole numbers (torchrun sets them; launch with torchrun)")
    use_cuda = device != "cpu" and torch.cuda.is_available()
    try:
        dist.init_process_group("nccl" if use_cuda else "gloo")
    except (ValueError, RuntimeError) as e:  # a missing MASTER_ADDR, an unreachable peer...
        raise _Fail(f"--distributed could not join the process group ({' '.join(str(e).split())[:200]}): launch "
                    "with torchrun") from None
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        return f"cuda:{local}"
    return "cpu"


def cmd_audit(args: argparse.Namespace) -> int:
    from trustgen.data.loaders import load_data
    from trustgen.io import atomic_write_text
    from trustgen.training import TrainConfig

    if args.epsilon is None and (args.delta is not None or args.accountant != "prv" or args.clipping != "auto"
                                 or args.label_budget is not None or args.marginal_budget is not None):
        raise _Fail("--delta, --accountant, --clipping, --label-budget and --marginal-budget need --epsilon (without "
                    "it the audited run is not private)")
    if args.white_box and args.epsilon is None:
        raise _Fail("--white-box audits the DP-SGD mechanism: it needs --epsilon")
    if args.canaries is not None and args.canaries < (100 if args.white_box else 2):
        raise _Fail(f"--canaries must be at least {100 if args.white_box else 2}, got {args.canaries}")
    privacy = _privacy_config(args)
    data, schema = load_data(args.data, args.schema)
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, seed=args.seed, progress=not args.no_progress)
    if args.white_box:
        obj, text = _white_box_audit(args, data, schema, cfg, privacy)
    else:
        from trustgen.pipeline import train
        from trustgen.privacy.audit import audit

        r = audit(data, schema, args.model, cfg, train=train, privacy=privacy, canaries=args.canaries or 200,
                  seed=args.seed, model_options=_parse_options(args.option))
        claimed = "not private" if r.claimed_epsilon is None else f"claimed epsilon {r.claimed_epsilon:.3f}"
        obj, text = r.to_dict(), (
            f"black-box audit of {args.model} on {args.data} with {r.canaries} canaries ({r.members} inserted): "
            f"attack AUC {r.attack_auc:.3f}, epsilon lower bound {r.epsilon_lower_bound:.3f} (95% confidence, "
            f"one-run analysis; {claimed})")
    if args.out:
        atomic_write_text(Path(args.out) / "audit.json", json.dumps(obj, indent=2) + "\n")
    _emit(args, obj, text)
    return 0


def _white_box_audit(args: argparse.Namespace, data, schema, cfg, privacy) -> tuple[dict, str]:
    """Gradient canaries through the DP-SGD step this training would run: its sample rate, steps,
    noise multiplier and clipping mode (from the same plan), at its delta and accountant."""
    from trustgen.data.encoders import make_encoder
    from trustgen.models import build_model
    from trustgen.models.nets import DataSpec
    from trustgen.privacy.audit_dp_sgd import audit_dp_sgd
    from trustgen.privacy.marginal_histogram import marginal_layout
    from trustgen.privacy.plan import plan_privacy

    n = len(data)
    model = build_model(args.model, DataSpec.from_encoder(make_encoder(schema)), _parse_options(args.option),
                        private=True)
    steps = cfg.total_steps(n)
    # n_classes, marginal_bins: training spends shares on the label and marginal histograms, and
    # DP-SGD's sigma is calibrated for the rest; the audit takes that sigma (the claim is then
    # DP-SGD's part alone).
    plan = plan_privacy(privacy, n=n, batch_size=cfg.batch_size, steps=steps, model=model,
                        n_classes=schema.n_classes or 0,
                        marginal_bins=tuple(c.bins for c in marginal_layout(schema)))
    r = audit_dp_sgd(noise_multiplier=plan.noise_multiplier, delta=plan.delta, sample_rate=plan.sample_rate,
                     steps=steps, canaries=args.canaries or 10_000, runs=args.runs, accountant=privacy.accountant,
                     clipping=plan.mode, max_grad_norm=privacy.max_grad_norm, seed=args.seed,
                     progress=not args.no_progress)
    verdict = "BROKEN: the bound exceeds the claim" if r.caught else "not refuted"
    return r.to_dict(), (
        f"white-box audit of DP-SGD as {args.model} on {args.data} would train it (q {r.sample_rate:.4g}, "
        f"{r.steps} steps, sigma {r.noise_multiplier:.4g}, {r.clipping} clipping), {r.members + r.non_members} "
        f"gradient canaries: epsilon lower bound {r.gdp_epsilon_lower_bound:.3f} (Gaussian DP), "
        f"{r.epsilon_delta_lower_bound:.3f} ((epsilon, delta)), {r.one_run_epsilon_lower_bound:.3f} (one run); "
        f"claimed epsilon {r.claimed_epsilon:.3f}: {verdict}")


def cmd_privacy(args: argparse.Namespace) -> int:
    from trustgen.run import Run

    run = Run.load(args.run)
    if run.privacy is None:
        raise _Fail(f"run {args.run!r} has no privacy report (privacy.json)")
    if args.json:
        print(json.dumps(run.privacy.to_dict()))
    else:
        print(run.privacy.summary())
    return 0


def sampler_config(args: argparse.Namespace, run):
    """The run's sampling defaults overridden by the sampling flags given."""
    from trustgen.sampling.config import SamplerConfig

    flags = {"kind": args.sampler, "steps": args.sample_steps, "eta": args.eta, "guidance": args.guidance}
    given = {k: v for k, v in flags.items() if v is not None}
    if given and run.family != "diffusion":
        names = {"kind": "--sampler", "steps": "--sample-steps", "eta": "--eta", "guidance": "--guidance"}
        raise _Fail(f"{', '.join(names[k] for k in given)} apply to diffusion runs; this run is a {run.family}")
    settings = dict(run.sampling)
    if "kind" in given and given["kind"] != settings.get("kind", "ddim"):
        settings.pop("steps", None)  # the run's DDIM settings do not carry over to another sampler
        settings.pop("eta", None)
    settings.update(given)
    if args.deterministic:
        if settings.get("kind", "ddim") != "ddim" and "kind" not in given:
            raise _Fail(f"this run samples with {settings['kind']} by default; a deterministic decode needs "
                        "--sampler ddim")
        settings["deterministic"] = True
    return SamplerConfig.from_dict(settings)


def cmd_sample(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from trustgen.run import Run
    from trustgen.sampling.sampler import Sampler
    from trustgen.sampling.writers import check_out_path, write_stream

    check_out_path(args.out, n=args.n)
    key = None
    if args.watermark_key is not None:
        from trustgen.watermark.keys import WatermarkKey

        if args.out.lower().endswith(".png"):
            raise _Fail("a .png is a figure, not a data file: write .csv or .npz to release watermarked samples")
        key = WatermarkKey.load(args.watermark_key)
    constraints = None
    if args.constraints is not None:
        from trustgen.constraints.language import load_constraints

        constraints = load_constraints(args.constraints)
    elif args.constraint_method != "auto" or any(getattr(args, k) is not None for k in
                                                  ("budget", "balance", "search_steps", "mcmc_steps")):
        raise _Fail("--constraint-method, --budget, --search-steps, --mcmc-steps and --balance apply with "
                    "--constraints FILE.json")
    run = Run.load(args.run, device=args.device)
    out = check_out_path(args.out, run.schema.kind, args.n)  # the format's bound, before any sampling
    if constraints is not None:
        _check_constraint_steps(args, run)
    if args.uncertainty is not None:
        from trustgen.sampling.writers import UNCERTAINTY_FIELDS
        from trustgen.uncertainty.posterior import check_bayesian

        check_bayesian(run.model)
        clash = sorted({c.name for c in getattr(run.schema, "columns", ())} & {n for n, _ in UNCERTAINTY_FIELDS})
        if clash and out.suffix.lower() == ".csv":
            raise _Fail(f"the schema has columns named {clash}: the uncertainty columns would overwrite them; "
                        "write .png, or rename those columns")
    reference = None
    if args.real is not None:
        if args.uncertainty is not None:
            raise _Fail("--real and --uncertainty make different figures: give one of them")
        if out.suffix.lower() != ".png" or run.schema.kind != "tabular":
            raise _Fail("--real only applies to a .png of tabular samples")
        from trustgen.data.loaders import load_data

        reference, _ = load_data(args.real, run.schema)
    # On stderr, and only once sampling has run for 2 s: short runs stay quiet, --json's stdout clean.
    with tqdm(desc=f"sample {args.n:,} ({run.family})", unit="pass", disable=args.no_progress, delay=2.0,
              file=sys.stderr, dynamic_ncols=True) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        config = sampler_config(args, run)
        fit = False if args.no_marginal_fit else None
        noise_hooks = ()
        if key is not None:
            from trustgen.watermark.release import watermark_batch, watermarked_sampler

            noise_hooks = watermarked_sampler(run, key).noise_hooks  # refuses a run that cannot carry the mark
        if constraints is None:
            batches = Sampler(run, config=config, noise_hooks=noise_hooks, progress=progress,
                              marginal_fit=fit).stream(args.n, labels=args.label, seed=args.seed)
        else:
            from trustgen.sampling.constrained import ConstrainedSampler, constrained_stream

            steps = {k: getattr(args, k) for k in ("search_steps", "mcmc_steps") if getattr(args, k) is not None}
            csampler = ConstrainedSampler(run, constraints, method=args.constraint_method, budget=args.budget,
                                          config=config, noise_hooks=noise_hooks, progress=progress,
                                          marginal_fit=fit, **steps)
            batches = constrained_stream(csampler, args.n, labels=args.label, seed=args.seed, balance=args.balance)
        if key is not None:
            batches = (watermark_batch(b, key, run.schema) if constraints is None else
                       csampler.keep_satisfying(watermark_batch(b, key, run.schema), b) for b in batches)
        if args.uncertainty is not None:
            from trustgen.uncertainty.posterior import with_uncertainty

            import secrets

            draw_seed = args.seed if args.seed is not None else secrets.randbits(63)
            batches = (with_uncertainty(b, run.model, draws=args.uncertainty, seed=draw_seed) for b in batches)
        reports: list = []
        batches = _tally_reports(batches, reports)
        written = write_stream(batches, out, schema=run.schema, n=args.n, title=f"{run.family} samples",
                               reference=reference)
    counts = _named_counts(written.label_counts, run.schema.classes)
    marked = "" if key is None else f" (watermarked with key {key.key_id})"
    summary = _constraint_summary(reports)
    ruled = "" if summary is None else (
        f"; every sample satisfies the {len(summary['hard'])} hard constraints ({summary['method']}, "
        f"{summary['draws']:,} draws; {summary['satisfied_before_repair']:.1%} of the model's raw draws did)"
        + (f"; {summary['unmarked']:,} samples left without the value mark, which would break a hard constraint"
           if summary["unmarked"] else ""))
    _emit(args, {"out": str(out), "n": written.n, "seed": args.seed, "label_counts": counts,
                 "watermark_key_id": None if key is None else key.key_id, "constraints": summary},
          f"wrote {written.n} samples to {out}{marked}{ruled}")
    return 0


def _named_counts(counts: dict[int, int], classes: tuple | None) -> dict[str, int]:
    """Label counts keyed by class name (``--label yes`` reads back as ``{"yes": 25}``), by index
    where the schema has no names or two names print alike."""
    names = None if classes is None else [str(c) for c in classes]
    if names is None or len(set(names)) < len(names):
        return {str(k): v for k, v in counts.items()}
    return {names[k]: v for k, v in counts.items()}


def cmd_score(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from trustgen.data.encoders import make_encoder
    from trustgen.data.loaders import load_data
    from trustgen.io import atomic_write
    from trustgen.run import Run
    from trustgen.uncertainty.novelty import score_inputs
    from trustgen.uncertainty.posterior import check_bayesian

    if not args.out.lower().endswith(".csv"):
        raise _Fail(f"--out must be a .csv file (a row of scores per input), got {args.out!r}")
    if args.figure is not None and not args.figure.lower().endswith(".png"):
        raise _Fail(f"--figure must be a .png file, got {args.figure!r}")
    run = Run.load(args.run, device=args.device)
    check_bayesian(run.model)  # before reading the input
    data, _ = load_data(args.input, run.schema, labels_optional=True)  # the scores never read a label
    x, _ = make_encoder(run.schema).transform(data)
    scores = score_inputs(run.model, x, label_prior=run.label_prior, draws=args.draws, seed=args.seed,
                          reference=args.reference)
    cols = scores.columns()
    table = pd.DataFrame({k: v for k, v in cols.items() if k != "label"})
    if scores.label is not None:
        table.insert(len(table.columns) - 2, "label", [run.schema.classes[i] for i in scores.label])
    atomic_write(args.out, lambda f: table.to_csv(f, index=False), "w")
    if args.figure is not None:
        from trustgen.plots import save_figure, score_histograms

        names = ("nll", "epistemic", "novelty")
        save_figure(score_histograms([("inputs", {k: cols[k] for k in names}),
                                      ("the model's own samples", {k: scores.reference[k] for k in names})],
                                     title=f"scores of {args.input}"), args.figure)
    rare = int((scores.p_value < 0.01).sum())
    flagged = "" if scores.confident_but_novel is None else (
        f"; {int(scores.confident_but_novel.sum())} with a confident label despite that")
    _emit(args, {"out": args.out, "n": len(table), "novel_at_1pct": rare, "draws": scores.draws,
                 "label_source": scores.label_source, "figure": args.figure,
                 "confident_but_novel": None if scores.confident_but_novel is None
                 else int(np.sum(scores.confident_but_novel))},
          f"wrote scores of {len(table)} inputs to {args.out}: {rare} more novel than 99% of the model's own "
          f"samples{flagged}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from trustgen.data.loaders import load_data
    from trustgen.explain.classifier_file import read_classifier
    from trustgen.explain.report import check_out_directory, explain_records, explain_summary_text
    from trustgen.run import Run

    if args.clue and (args.counterfactuals is not None or args.threshold is not None):
        raise _Fail("--counterfactuals and --threshold shape counterfactuals (--target); --clue takes neither")
    check_out_directory(args.out, {"run": args.run, "--input": args.input, "--classifier": args.classifier,
                                   "--constraints": args.constraints})
    run = Run.load(args.run, device=args.device)
    classifier = read_classifier(args.classifier, run.schema, trust_pickle=args.trust_pickle)
    constraints = None
    if args.constraints is not None:
        from trustgen.constraints.language import load_constraints

        constraints = load_constraints(args.constraints)
    data, _ = load_data(args.input, run.schema, labels_optional=True)  # the label column is not needed
    labelled = _has_labels(args.input, run.schema)
    if len(data) > args.max_inputs:
        raise _Fail(f"--input has {len(data)} records; explanations are per record: give at most --max-inputs "
                    f"{args.max_inputs} (or raise it)")
    summary = explain_records(run, classifier, data, args.out, target=args.target, clue_mode=args.clue,
                              immutable=args.immutable or (), constraints=constraints,
                              n_counterfactuals=args.counterfactuals or 1, steps=args.steps,
                              threshold=0.5 if args.threshold is None else args.threshold, seed=args.seed,
                              source=args.input, labelled=labelled)
    _emit(args, {"out": args.out, **summary}, explain_summary_text(summary, args.out))
    return 0


def _has_labels(path: str, schema) -> bool:
    """Whether a data file holds the schema's label (a CSV's label column, an .npz's ``y``)."""
    from trustgen.data.encoders import ImageData
    from trustgen.data.loaders import read_data_file

    raw = read_data_file(path, nrows=0)
    return raw.y is not None if isinstance(raw, ImageData) else schema.label in raw.columns


def _check_constraint_steps(args: argparse.Namespace, run) -> None:
    """--search-steps and --mcmc-steps only where they act: refused, not ignored."""
    from trustgen.sampling.constraint_hooks import deterministic_decode

    if args.constraint_method == "rejection" and (args.search_steps is not None or args.mcmc_steps is not None):
        raise _Fail("--search-steps and --mcmc-steps apply to projection and guidance, not rejection")
    if args.search_steps is not None and run.family == "diffusion":
        raise _Fail("--search-steps applies to VAE and GAN runs (diffusion projects every step instead)")
    if args.mcmc_steps and not deterministic_decode(run, sampler_config(args, run)):
        raise _Fail("--mcmc-steps needs a decode that is a function of the latent: a GAN, VAE images or "
                    "--deterministic, DDIM with eta 0")


def _tally_reports(batches, reports: list):
    """The batches, unchanged, with their constraint reports appended to ``reports``."""
    for b in batches:
        if b.constraint_report is not None:
            reports.append(b.constraint_report)
        yield b


def _constraint_summary(reports: list) -> dict | None:
    """One report for a file written in several constrained batches."""
    if not reports:
        return None
    from trustgen.sampling.constrained import merge_reports

    return merge_reports(reports).to_dict()


def _sample_count(text: str) -> int:
    """``-n``: a whole number of samples, at least 1, also as ``1e6`` (the upper bound depends on --out)."""
    import math

    try:
        n = int(text)
    except ValueError:
        try:
            x = float(text)
        except ValueError:
            x = math.nan
        if not (math.isfinite(x) and x.is_integer()):
            raise argparse.ArgumentTypeError(f"expects a whole number of samples, got {text!r}") from None
        n = int(x)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return n


def cmd_demo(args: argparse.Namespace) -> int:
    from trustgen.demo import run_demo

    summary = run_demo(Path(args.out), smoke=args.smoke, seed=args.seed, device=args.device,
                       progress=not args.no_progress)
    _emit(args, summary, summary["text"])
    return 0


def cmd_detect(args: argparse.Namespace) -> int:
    from trustgen.data.loaders import load_data
    from trustgen.watermark.keys import WatermarkKey
    from trustgen.watermark.release import detect_data

    if (args.run is None) == (args.schema is None):
        raise _Fail("give --run (the samples' run: adds the latent test) or --schema (the value test alone), "
                    "one of them")
    key = WatermarkKey.load(args.key)
    run = None
    if args.run is not None:
        from trustgen.run import Run

        run = Run.load(args.run, device=args.device)
    data, schema = load_data(args.file, run.schema if run is not None else args.schema)
    r = detect_data(data, key, schema, run=run, fpr=args.fpr)  # the latent test inverts with the run's settings
    verdict = "WATERMARKED" if r.file_detected else "not detected"
    tests = ", ".join(f"{m} p {t.p_value:.3g}" for m, t in r.tests.items())
    per_sample = [m for m, t in r.tests.items() if len(t.p_values) == len(data)]
    count = (f"{int(r.detected.sum())} of {len(r.p_values)} samples detected"
             + (f" by the {' and '.join(per_sample)} test" if "table" in r.tests and per_sample else "")
             if per_sample else "the table test decides on the table as a whole")
    _emit(args, r.to_dict(), f"{args.file}: {verdict} with key {key.key_id} (file p-value {r.p_value:.3g} at "
                             f"FPR {r.fpr:g}; {count}; tests: {tests})"
                             + "".join(f"; {m} skipped: {why}" for m, why in r.skipped.items()))
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    from trustgen.watermark.keys import WatermarkKey

    key = WatermarkKey.generate()
    key.save(args.out)
    _emit(args, {"out": args.out, "key_id": key.key_id},
          f"wrote watermark key {key.key_id} to {args.out} (owner-only: keep it secret; whoever has it can "
          "detect and forge the watermark)")
    return 0


def cmd_schema_infer(args: argparse.Namespace) -> int:
    from trustgen.data.schema import save_schema

    if args.epsilon is not None:
        schema = _infer_dp_schema(args)
        warning = (f"DP schema: estimated with pure epsilon-DP (epsilon {args.epsilon:g}, recorded in the schema); "
                   "training on it adds that epsilon to the run's total. Candidate lists and ranges must be public.")
    else:
        if args.categories or args.vocabulary or args.range or args.integer:
            raise _Fail("--categories, --vocabulary, --range and --integer need --epsilon (without it the "
                        "draft is read from the data, not private)")
        from trustgen.data.loaders import infer_schema, read_data_file

        schema = infer_schema(read_data_file(args.data), label=args.label)
        warning = ("DRAFT derived from the data itself: these bounds and categories reveal information about "
                   "the rows and are NOT private. Replace them with public knowledge, then set \"source\": \"declared\".")
    if args.out:
        save_schema(schema, args.out)
    d = schema.to_dict()
    if args.json:
        print(json.dumps({"schema": d, "warning": warning, "out": args.out}))
    else:
        print(warning, file=sys.stderr)
        if not args.out:
            print(json.dumps(d, indent=2))
        else:
            print(f"wrote {'DP' if schema.source == 'dp' else 'draft'} schema to {args.out}")
    return 0


def _pairs(values: Sequence[str], option: str, form: str) -> dict[str, str]:
    """``COL=REST`` arguments of a repeatable option, each column at most once."""
    out: dict[str, str] = {}
    for v in values:
        col, eq, rest = v.partition("=")
        if not eq or not col or not rest:
            raise _Fail(f"{option} expects {form}, got {v!r}")
        if col in out:
            raise _Fail(f"{option} gives column {col!r} twice")
        out[col] = rest
    return out


def _infer_dp_schema(args: argparse.Namespace):
    """``schema infer --epsilon``: every argument and the data's header are checked before a row is read."""
    from trustgen.data.encoders import ImageData
    from trustgen.data.loaders import read_data_file
    from trustgen.io import read_json
    from trustgen.privacy.dp_domains import check_request, infer_dp_schema

    categories: dict[str, list] = {
        c: v.split(",") for c, v in _pairs(args.categories, "--categories", "COL=A,B,...").items()}
    if args.vocabulary:
        vocab = read_json(args.vocabulary, "vocabulary file", hint='write {"COLUMN": ["A", "B", ...], ...}')
        if not isinstance(vocab, dict) or not all(
                isinstance(v, list) and all(isinstance(x, (str, int)) and not isinstance(x, bool) for x in v)
                for v in vocab.values()):
            raise _Fail(f'--vocabulary {args.vocabulary!r} must be a JSON object {{"COLUMN": ["A", "B", ...]}} '
                        "of strings or integers")
        both = sorted(set(vocab) & set(categories))
        if both:
            raise _Fail(f"columns {both} have candidates in both --categories and --vocabulary: give them once")
        categories.update(vocab)
    ranges: dict[str, tuple[float, float]] = {}
    for col, v in _pairs(args.range, "--range", "COL=LOW:HIGH").items():
        try:
            lo, hi = (float(x) for x in v.split(":"))
        except ValueError:
            raise _Fail(f"--range expects COL=LOW:HIGH with two numbers, got {col}={v}") from None
        ranges[col] = (lo, hi)
    header = read_data_file(args.data, nrows=0)
    if isinstance(header, ImageData):
        raise _Fail("schema infer --epsilon is for tables (.csv): an image's shape and value range are format "
                    "facts; declare them")
    check_request(list(header.columns), args.epsilon, categories=categories, ranges=ranges, integer=args.integer,
                  label=args.label)
    return infer_dp_schema(read_data_file(args.data), args.epsilon, categories=categories, ranges=ranges,
                           integer=args.integer, label=args.label)


# ---------------------------------------------------------------------------------- parser
COUNT = functools.partial(bounded_number, int)
SEED = COUNT(0, MAX_SEED)
EPSILON = bounded_number(float, 0, 1e6, low_open=True)


def _add_privacy_arguments(parser: argparse.ArgumentParser, audited: bool = False) -> None:
    """The DP flags, shared by train and audit (an audit must run what training would)."""
    what = "audit a DP run at this epsilon (omit: a non-private run)" if audited else \
        "train with DP-SGD to this epsilon (omit: not private)"
    parser.add_argument("--epsilon", type=EPSILON, help=what)
    parser.add_argument("--delta", type=bounded_number(float, 0, 1, low_open=True),
                        help="DP delta (default: min(1e-5, 1/(10 n)); must be < 1/n)")
    parser.add_argument("--max-grad-norm", type=bounded_number(float, 0, 1e6, low_open=True), default=1.0,
                        help="per-example clipping norm C")
    parser.add_argument("--accountant", choices=("prv", "rdp"), default="prv", help="privacy accountant")
    parser.add_argument("--clipping", choices=("auto", "bookkeeping", "ghost", "hooks"), default="auto",
                        help="per-example clipping: auto (book-keeping for trustgen models), or one by name")
    parser.add_argument("--label-budget", type=bounded_number(float, 0, 1, high_open=True), metavar="SHARE",
                        help=LABEL_BUDGET_HELP)
    parser.add_argument("--marginal-budget", type=bounded_number(float, 0, 1, high_open=True), metavar="SHARE",
                        help=MARGINAL_BUDGET_HELP)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="trustgen", description="Private and trustworthy generative models for tables and images.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a model and write a run directory")
    t.add_argument("--data", required=True, help="digits | breast_cancer | randhie | FILE.csv | FILE.npz")
    t.add_argument("--schema", help="schema JSON (required for user files; `trustgen schema infer` drafts one)")
    t.add_argument("--model", required=True, choices=FAMILIES, help="model family")
    t.add_argument("--epochs", type=COUNT(1, MAX_EPOCHS), default=100, help="passes over the data")
    t.add_argument("--steps", type=COUNT(1, MAX_STEPS), help="total optimiser steps (overrides --epochs)")
    t.add_argument("--batch-size", type=COUNT(1, MAX_BATCH_SIZE), default=128,
                   help="records per step (under DP: the expected size of a Poisson batch)")
    t.add_argument("--lr", type=bounded_number(float, 0, 10, low_open=True),
                   help="learning rate (default: 1e-3 for vae and diffusion, 2e-4 for gan)")
    t.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    t.add_argument("--seed", type=SEED, default=0, help="seed of initialisation and data order (public)")
    t.add_argument("--checkpoint-every", type=COUNT(0, MAX_STEPS), default=500,
                   help="steps between resume checkpoints (0: at the end only)")
    t.add_argument("--resume", action="store_true",
                   help="continue an interrupted training from OUT/.private/checkpoint.pt")
    t.add_argument("--overwrite", action="store_true",
                   help="replace what --out holds (a finished run, or a directory that is not a run)")
    t.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="model option, repeatable, e.g. latent_dim=32 (see docs/foundation.md)")
    _add_privacy_arguments(t)
    t.add_argument("--distributed", action="store_true",
                   help="data-parallel over the processes of torchrun (each samples its own shard)")
    t.add_argument("--out", required=True, help="run directory to write")
    t.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    t.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    t.set_defaults(func=cmd_train, inputs=("data", "schema"), outputs=(("out", "directory"),))

    s = sub.add_parser("sample", help="draw samples from a run")
    s.add_argument("run", help="run directory written by `trustgen train`")
    s.add_argument("-n", type=_sample_count, required=True,
                   help="required: the number of samples, at least 1; at most 10^9 per .csv/.npz (written as "
                        "they are drawn, in flat memory), 400 images or 10,000 rows per .png")
    s.add_argument("--no-marginal-fit", action="store_true",
                   help="sample as the model does, without correcting towards the run's 1-way marginals "
                        "(docs/fidelity.md)")
    s.add_argument("--label", help="class to condition on: a class name, or an index 0..k-1 when no class has that "
                                   "name (default: drawn from the run's label prior)")
    s.add_argument("--seed", type=SEED,
                   help="seed of the sampling stream (default: none, a fresh random seed each time)")
    s.add_argument("--device", default="cpu", help="cpu | cuda | auto (default: %(default)s)")
    s.add_argument("--out", required=True, help="required: .csv (tables), .npz (images) or .png (either); written "
                                                "beside it and renamed into place at the end")
    s.add_argument("--real", help="tables, .png only: also plot this real data (the figure then shows it: "
                                  "private). Default: none, the figure shows the samples alone")
    s.add_argument("--sampler", choices=("ddim", "ddpm"), help="diffusion: reverse process (default: the run's, ddim)")
    s.add_argument("--sample-steps", type=COUNT(1, MAX_SAMPLER_STEPS), help="diffusion: DDIM steps (default: the run's, 50)")
    s.add_argument("--eta", type=bounded_number(float, 0, 1),
                   help="diffusion: DDIM stochasticity in [0, 1] (default: the run's, 0)")
    s.add_argument("--guidance", type=bounded_number(float, 0, 1e6), help="diffusion: classifier-free guidance scale "
                                                   "(default: the run's, 2 for images, 1 for tables)")
    s.add_argument("--deterministic", action="store_true",
                   help="decode without randomness after the latent noise (no decoder noise, DDIM eta 0; "
                        "default: off)")
    s.add_argument("--no-progress", action="store_true",
                   help="no progress bar on stderr (default: one appears when sampling takes over 2 s)")
    s.add_argument("--json", action="store_true", help="print one JSON object on stdout (default: a line of text)")
    s.add_argument("--watermark-key", metavar="KEY",
                   help="mark the samples with this key (`trustgen keygen`): in the latent noise and in the values; "
                        "`trustgen detect` finds it (default: no watermark)")
    s.add_argument("--constraints", metavar="FILE.json",
                   help="rules every sample must satisfy (docs/constraints.md); none is returned that breaks a hard "
                        "one (default: none)")
    s.add_argument("--constraint-method", choices=("auto", "rejection", "projection", "guidance"), default="auto",
                   help="how to meet the constraints: rejection (exact in distribution), projection, guidance, or "
                        "auto (rejection if at least 10%% of the model's draws satisfy them, else projection)")
    s.add_argument("--budget", type=COUNT(1, MAX_SAMPLES_DRAWN),
                   help="the most samples to draw per batch of 1,000 written (default: 100 per sample + 10,000)")
    s.add_argument("--search-steps", type=COUNT(0, 100_000),
                   help="with --constraints, VAE/GAN projection and guidance: gradient steps on the latent before the "
                        "output is projected (0: project the output directly, the fastest; default: 100)")
    s.add_argument("--mcmc-steps", type=COUNT(0, 100_000),
                   help="with --constraints, projection and guidance: elliptical slice steps from each feasible latent, "
                        "towards the model's own distribution under the constraints (0: none; default: 20)")
    s.add_argument("--balance", metavar="COLUMN",
                   help="with --constraints: equal counts of every category of this categorical column (or the "
                        "label) (default: none)")
    s.add_argument("--uncertainty", type=COUNT(2, 1024), metavar="DRAWS",
                   help="Bayesian runs: per-sample uncertainty from this many posterior weight draws for each "
                        "sample's latent: columns uncertainty (and label_disagreement) in a .csv, arrays "
                        "uncertainty, uncertainty_map (images) in a .npz, a figure of maps in a .png "
                        "(docs/uncertainty.md; default: none)")
    s.set_defaults(func=cmd_sample, inputs=("run", "real", "watermark_key", "constraints"),
                   outputs=(("out", "file", "real"),))

    dt = sub.add_parser("detect", help="test a file of samples for a watermark key: p-values per sample and file")
    dt.add_argument("file", help="samples: .csv (tables) or .npz (images)")
    dt.add_argument("--key", required=True, help="the watermark key file (`trustgen keygen`)")
    dt.add_argument("--run", help="the run the samples came from: adds the latent test (by inverting the model) "
                                  "and gives the schema (default: none, the value test alone, with --schema)")
    dt.add_argument("--schema", help="the samples' schema, when no --run is given")
    dt.add_argument("--fpr", type=bounded_number(float, 0, 0.5, low_open=True), default=1e-6,
                    help="false-positive rate of each decision")
    dt.add_argument("--device", default="cpu", help="cpu | cuda | auto, for the latent test")
    dt.add_argument("--json", action="store_true",
                    help="print one JSON object: per sample the score, p_value and detected, and the file's p_value")
    dt.set_defaults(func=cmd_detect, inputs=("file", "key", "run", "schema"))

    so = sub.add_parser("score", help="Bayesian runs: novelty and label uncertainty of real inputs (a row of "
                                      "scores per input)")
    so.add_argument("run", help="run directory of a Bayesian model (`--option decoder_net=bayes-mlp`)")
    so.add_argument("--input", required=True, help="required: the rows or images to score (.csv / .npz in the "
                                                   "run's schema; the label column may be left out)")
    so.add_argument("--out", required=True, help="required: .csv of scores, a row per input (it describes the "
                                                 "inputs: as private as they are)")
    so.add_argument("--figure", help="also a .png of the scores' histograms, inputs beside the model's own samples")
    so.add_argument("--draws", type=COUNT(2, 1024), default=16, help="posterior weight draws (default: %(default)s)")
    so.add_argument("--reference", type=COUNT(100, 100_000), default=1000,
                    help="samples of the model that calibrate novelty and p-values, at least 100 (so that a "
                         "p-value can fall below 0.01) (default: %(default)s)")
    so.add_argument("--seed", type=SEED, default=0, help="seed of the draws and the reference (default: %(default)s)")
    so.add_argument("--device", default="cpu", help="cpu | cuda | auto (default: %(default)s)")
    so.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    so.set_defaults(func=cmd_score, inputs=("run", "input"), outputs=(("out", "file", True), ("figure", "file", True)))

    ex = sub.add_parser("explain", help="counterfactuals (--target) or explanations of uncertainty (--clue) of "
                                        "records, on the run's data manifold, with attributions and figures")
    ex.add_argument("run", help="run directory: the generative model whose latent space is searched")
    ex.add_argument("--classifier", required=True,
                    help="required: the classifier to explain: a .pt from SchemaClassifier.save, a .pt2 from "
                         "torch.export.save (a module on the data's units; needs --trust-pickle), or a pickled "
                         "scikit-learn model with predict_proba (.pkl/.joblib; needs --trust-pickle)")
    ex.add_argument("--trust-pickle", action="store_true",
                    help="allow a pickled or exported (.pt2) classifier: loading one can run code inside it, so only "
                         "for a file you made or trust")
    ex.add_argument("--input", required=True, help="required: the records to explain (.csv / .npz in the run's "
                                                   "schema; the label column may be left out)")
    ex.add_argument("--out", required=True, help="required: directory for the explanations, figures and summary "
                                                 "(it shows the inputs: as private as they are)")
    goal = ex.add_mutually_exclusive_group(required=True)
    goal.add_argument("--target", help="the class to reach: a class name, an index, or flip (two classes)")
    goal.add_argument("--clue", action="store_true",
                      help="explain a Bayesian classifier's uncertainty (CLUE): the nearest record it is sure about")
    ex.add_argument("--immutable", nargs="+", metavar="COLUMN", help="columns held at their input values")
    ex.add_argument("--constraints", help="constraints JSON the explanations must satisfy (docs/constraints.md)")
    ex.add_argument("--counterfactuals", type=COUNT(1, 32),
                    help="diverse counterfactuals per input (with --target; default: 1)")
    ex.add_argument("--steps", type=COUNT(1, 100_000), default=300, help="search steps (default: %(default)s)")
    ex.add_argument("--threshold", type=bounded_number(float, 0, 0.999, low_open=True),
                    help="target probability a counterfactual must exceed (with --target; default: 0.5)")
    ex.add_argument("--max-inputs", type=COUNT(1, 10_000_000), default=1000,
                    help="refuse a larger --input (default: %(default)s)")
    ex.add_argument("--seed", type=SEED, default=0, help="seed of the search (default: %(default)s)")
    ex.add_argument("--device", default="cpu", help="cpu | cuda | auto (default: %(default)s)")
    ex.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    ex.set_defaults(func=cmd_explain, inputs=("run", "input", "classifier", "constraints"),
                    outputs=(("out", "directory", True),))

    d = sub.add_parser("demo", help="train on digits, sample, and write a grid and a summary")
    d.add_argument("--out", default="trustgen-demo", help="directory for the run, the grid and the summary")
    d.add_argument("--seed", type=SEED, default=0, help="seed of training and sampling")
    d.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    d.add_argument("--smoke", action="store_true", help="a few steps only (for CI)")
    d.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    d.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    d.set_defaults(func=cmd_demo, outputs=(("out", "directory"),))

    pr = sub.add_parser("privacy", help="print a run's privacy report")
    pr.add_argument("run", help="run directory written by `trustgen train`")
    pr.add_argument("--json", action="store_true", help="print the report as one JSON object on stdout")
    pr.set_defaults(func=cmd_privacy, inputs=("run",))

    au = sub.add_parser("audit", help="canary audits: an empirical lower bound on epsilon (black-box or --white-box)")
    au.add_argument("--data", required=True, help="digits | breast_cancer | randhie | FILE.csv | FILE.npz")
    au.add_argument("--schema", help="schema JSON (required for user files)")
    au.add_argument("--model", required=True, choices=FAMILIES, help="model family")
    _add_privacy_arguments(au, audited=True)
    au.add_argument("--steps", type=COUNT(1, MAX_STEPS), default=2000, help="training steps of the audited run")
    au.add_argument("--batch-size", type=COUNT(1, MAX_BATCH_SIZE), default=64, help="records per step")
    au.add_argument("--canaries", type=COUNT(2, MAX_CANARIES),
                    help="canaries (default 200; with --white-box 10000 per run)")
    au.add_argument("--white-box", action="store_true",
                    help="audit the DP-SGD mechanism itself with gradient canaries (tight; see docs/privacy.md)")
    au.add_argument("--runs", type=COUNT(1, 1000), default=5, help="with --white-box: independent runs pooled")
    au.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="model option, repeatable, as for train")
    au.add_argument("--seed", type=SEED, default=0, help="seed of the canaries, training and the attack")
    au.add_argument("--out", help="directory for audit.json (default: print only)")
    au.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    au.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    au.set_defaults(func=cmd_audit, inputs=("data", "schema"), outputs=(("out", "directory"),))

    ev = sub.add_parser("evaluate", help="fidelity, utility, privacy-attack and fairness report for samples")
    from trustgen.evaluation.command import add_arguments, cmd_evaluate

    add_arguments(ev)
    ev.set_defaults(func=cmd_evaluate, inputs=("run", "samples", "real", "holdout"),
                    outputs=(("out", "directory", True),))

    kg = sub.add_parser("keygen", help="make a secret watermark key (256 bits, an owner-only file)")
    kg.add_argument("--out", required=True, help="key file to write (never overwritten); keep it secret")
    kg.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    kg.set_defaults(func=cmd_keygen, outputs=(("out", "file"),))

    sc = sub.add_parser("schema", help="schema tools")
    scs = sc.add_subparsers(dest="schema_command", required=True, parser_class=_Parser)
    si = scs.add_parser("infer", help="draft a schema from a data file (NOT private: review it), or with "
                                      "--epsilon estimate it with differential privacy")
    si.add_argument("data", help="FILE.csv or FILE.npz")
    si.add_argument("--label", help="the label column (tables)")
    si.add_argument("--epsilon", type=EPSILON, help="estimate bounds and categories with pure epsilon-DP "
                                                    "(spend recorded in the schema; see docs/privacy.md)")
    si.add_argument("--categories", action="append", default=[], metavar="COL=A,B,...",
                    help="with --epsilon: public candidate categories of a column (the label's too)")
    si.add_argument("--vocabulary", metavar="FILE", help='with --epsilon: JSON {"COL": ["A", "B", ...]} of public '
                                                         "candidate categories")
    si.add_argument("--range", action="append", default=[], metavar="COL=LOW:HIGH",
                    help="with --epsilon: public range of a numeric column (its bounds are chosen inside it)")
    si.add_argument("--integer", action="append", default=[], metavar="COL",
                    help="with --epsilon: a numeric column of whole numbers (bounds rounded outward)")
    si.add_argument("--out", help="schema JSON to write (default: print it)")
    si.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    si.set_defaults(func=cmd_schema_infer, inputs=("data", "vocabulary"), outputs=(("out", "file"),))
    return p


def _check_paths(args: argparse.Namespace) -> None:
    """Every path argument can be looked up, and every output path can be written, checked before
    any work (a command that trained for an hour must not fail at its last step on its --out).
    An output is never one of the command's inputs, and an output that shows private data
    (``private`` in the parser's ``outputs``) never lands inside a run directory, which is shared."""
    import os

    from trustgen.io import check_output_path, check_path_name

    inputs = {}
    for dest in getattr(args, "inputs", ()):
        if getattr(args, dest, None) is not None:
            check_path_name(getattr(args, dest), _name(dest))
            inputs[os.path.realpath(getattr(args, dest))] = dest
    for dest, kind, *private in getattr(args, "outputs", ()):
        value = getattr(args, dest, None)
        if value is None:
            continue
        option = _name(dest)
        check_output_path(value, kind, option)
        real = os.path.realpath(value)
        if real in inputs:
            raise _Fail(f"{option} {value!r} is the command's input {_name(inputs[real])}: it would be overwritten; "
                        "write somewhere else")
        if private and (private[0] is True or getattr(args, private[0], None) is not None):
            refuse_inside_a_run(value, option)


def _name(dest: str) -> str:
    """How the command line spells an argument: RUN for the positional, --NAME for options."""
    return dest.upper() if dest == "run" else "--" + dest.replace("_", "-")


def refuse_inside_a_run(path: str, option: str) -> None:
    """``path`` shows private data (a report, a figure of real rows): not inside a run directory,
    which is what people share."""
    from pathlib import Path

    p = Path(path).resolve()
    for d in (p, *p.parents):
        if (d / "run.json").is_file():
            raise _Fail(f"{option} {path!r} is inside the run directory {str(d)!r}: what it writes shows private "
                        "data, and a run directory is what gets shared; write it somewhere else")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2, already printed): a code, as for every error
        return e.code if isinstance(e.code, int) else 2
    try:
        _check_paths(args)
        return args.func(args)
    except (TrustgenError, _Fail) as e:
        print(f"trustgen: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: a line, not a traceback; what was being written is not left half-done
        print("trustgen: interrupted (an output is written whole or not at all)", file=sys.stderr)
        return 130
    except OSError as e:  # the system refused mid-way (a full disk, a file removed under us): not a usage error
        where = f" ({e.filename})" if e.filename else ""
        print(f"trustgen: error: {e.strerror or e}{where} (an output is written whole or not at all)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
