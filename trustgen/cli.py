"""The ``trustgen`` command. Run ``trustgen --help`` or ``trustgen COMMAND --help``.

Conventions: bad arguments or bad data exit with code 2 and a one-line reason on stderr;
commands that report something accept ``--json`` and then print exactly one JSON object on
stdout (progress bars and logs go to stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from trustgen.errors import TrustgenError

FAMILIES = ("vae", "gan", "diffusion")
LABEL_BUDGET_HELP = ("share of epsilon in [0, 1) for DP label frequencies (a Gaussian histogram, composed with "
                     "DP-SGD; default 0.05 on labelled data; 0: uniform labels)")


class _Parser(argparse.ArgumentParser):
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
    if args.epsilon is None and (args.delta is not None or args.label_budget is not None):
        raise _Fail("--delta and --label-budget need --epsilon (without --epsilon training is not private)")
    privacy = _privacy_config(args)
    if args.distributed:
        cfg.device = _init_distributed(args.device)
    try:
        run = train(args.data, args.model, cfg, schema=args.schema, model_options=_parse_options(args.option),
                    out=args.out, resume=args.resume, privacy=privacy)
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
                            label_budget=label_budget)
    privacy.validate()
    return privacy


def _init_distributed(device: str) -> str:
    """Join the process group torchrun set up (gloo on CPU, NCCL on GPUs); returns the device."""
    import os

    import torch
    import torch.distributed as dist

    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise _Fail("--distributed must be launched by torchrun, e.g. torchrun --nproc_per_node 2 -m trustgen train ...")
    use_cuda = device != "cpu" and torch.cuda.is_available()
    dist.init_process_group("nccl" if use_cuda else "gloo")
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        return f"cuda:{local}"
    return "cpu"


def cmd_audit(args: argparse.Namespace) -> int:
    from trustgen.data.loaders import load_data
    from trustgen.io import atomic_write_text
    from trustgen.pipeline import train
    from trustgen.privacy.audit import audit
    from trustgen.training import TrainConfig

    if args.epsilon is None and (args.delta is not None or args.accountant != "prv" or args.clipping != "auto"
                                 or args.label_budget is not None):
        raise _Fail("--delta, --accountant, --clipping and --label-budget need --epsilon (without it the audited "
                    "run is not private)")
    privacy = _privacy_config(args)
    data, schema = load_data(args.data, args.schema)
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, seed=args.seed, progress=not args.no_progress)
    r = audit(data, schema, args.model, cfg, train=train, privacy=privacy, canaries=args.canaries, seed=args.seed,
              model_options=_parse_options(args.option))
    if args.out:
        atomic_write_text(Path(args.out) / "audit.json", json.dumps(r.to_dict(), indent=2) + "\n")
    claimed = "not private" if r.claimed_epsilon is None else f"claimed epsilon {r.claimed_epsilon:.3f}"
    _emit(args, r.to_dict(),
          f"audit of {args.model} on {args.data} with {r.canaries} canaries ({r.members} inserted): attack AUC "
          f"{r.attack_auc:.3f}, empirical epsilon lower bound {r.epsilon_lower_bound:.3f} "
          f"(95% confidence; {claimed})")
    return 0


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
    from trustgen.run import Run
    from trustgen.sampling.sampler import Sampler
    from trustgen.sampling.writers import check_out_path, write_samples

    check_out_path(args.out)
    run = Run.load(args.run, device=args.device)
    out = check_out_path(args.out, run.schema.kind)
    reference = None
    if args.real is not None:
        if out.suffix.lower() != ".png" or run.schema.kind != "tabular":
            raise _Fail("--real only applies to a .png of tabular samples")
        from trustgen.data.loaders import load_data

        reference, _ = load_data(args.real, run.schema)
    batch = Sampler(run, config=sampler_config(args, run)).sample(args.n, labels=args.label, seed=args.seed)
    write_samples(batch, out, schema=run.schema, title=f"{run.family} samples", reference=reference)
    counts = {} if batch.labels is None else {str(k): int(v) for k, v in zip(*np.unique(batch.labels, return_counts=True))}
    _emit(args, {"out": str(out), "n": args.n, "seed": args.seed, "label_counts": counts},
          f"wrote {args.n} samples to {out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from trustgen.demo import run_demo

    summary = run_demo(Path(args.out), smoke=args.smoke, seed=args.seed, device=args.device,
                       progress=not args.no_progress)
    _emit(args, summary, summary["text"])
    return 0


def cmd_schema_infer(args: argparse.Namespace) -> int:
    from trustgen.data.loaders import infer_schema, read_data_file
    from trustgen.data.schema import save_schema

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
            print(f"wrote draft schema to {args.out}")
    return 0


# ---------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="trustgen", description="Private and trustworthy generative models for tables and images.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a model and write a run directory")
    t.add_argument("--data", required=True, help="digits | breast_cancer | randhie | FILE.csv | FILE.npz")
    t.add_argument("--schema", help="schema JSON (required for user files)")
    t.add_argument("--model", required=True, choices=FAMILIES)
    t.add_argument("--epochs", type=int, default=100)
    t.add_argument("--steps", type=int, help="total steps (overrides --epochs)")
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--lr", type=float)
    t.add_argument("--device", default="auto", help="auto | cpu | cuda")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints (0: end only)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/.private/checkpoint.pt after an interruption")
    t.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="model option, e.g. latent_dim=32")
    t.add_argument("--epsilon", type=float, help="train with DP-SGD to this epsilon (omit: not private)")
    t.add_argument("--delta", type=float, help="DP delta (default: min(1e-5, 1/(10 n)); must be < 1/n)")
    t.add_argument("--max-grad-norm", type=float, default=1.0, help="per-example clipping norm C")
    t.add_argument("--accountant", choices=("prv", "rdp"), default="prv")
    t.add_argument("--clipping", choices=("auto", "ghost", "hooks"), default="auto", help="Opacus clipping mode")
    t.add_argument("--label-budget", type=float, metavar="SHARE", help=LABEL_BUDGET_HELP)
    t.add_argument("--distributed", action="store_true",
                   help="data-parallel over the processes of torchrun (each samples its own shard)")
    t.add_argument("--out", required=True, help="run directory to write")
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="draw samples from a run")
    s.add_argument("run")
    s.add_argument("-n", type=int, required=True)
    s.add_argument("--label", help="class to condition on (name or index); default: the label prior")
    s.add_argument("--seed", type=int)
    s.add_argument("--device", default="cpu")
    s.add_argument("--out", required=True, help=".csv (tables), .npz or .png")
    s.add_argument("--real", help="tables, .png only: also plot this real data (the figure then shows it: "
                                  "private). Without it the figure shows the samples alone")
    s.add_argument("--sampler", choices=("ddim", "ddpm"), help="diffusion: reverse process (default: the run's, ddim)")
    s.add_argument("--sample-steps", type=int, help="diffusion: DDIM steps (default: the run's, 50)")
    s.add_argument("--eta", type=float, help="diffusion: DDIM stochasticity in [0, 1] (default 0)")
    s.add_argument("--guidance", type=float, help="diffusion: classifier-free guidance scale "
                                                   "(default: 2 for images, 1 for tables)")
    s.add_argument("--deterministic", action="store_true",
                   help="decode without randomness after the latent noise (no decoder noise, DDIM eta 0)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_sample)

    d = sub.add_parser("demo", help="train on digits, sample, and write a grid and a summary")
    d.add_argument("--out", default="trustgen-demo")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--device", default="auto")
    d.add_argument("--smoke", action="store_true", help="a few steps only (for CI)")
    d.add_argument("--no-progress", action="store_true")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_demo)

    pr = sub.add_parser("privacy", help="print a run's privacy report")
    pr.add_argument("run")
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(func=cmd_privacy)

    au = sub.add_parser("audit", help="canary membership audit: an empirical lower bound on epsilon")
    au.add_argument("--data", required=True)
    au.add_argument("--schema")
    au.add_argument("--model", required=True, choices=FAMILIES)
    au.add_argument("--epsilon", type=float, help="audit a DP run at this epsilon (omit: non-private)")
    au.add_argument("--delta", type=float)
    au.add_argument("--max-grad-norm", type=float, default=1.0)
    au.add_argument("--accountant", choices=("prv", "rdp"), default="prv", help="as for train: audit what was trained")
    au.add_argument("--clipping", choices=("auto", "ghost", "hooks"), default="auto", help="Opacus clipping mode")
    au.add_argument("--label-budget", type=float, metavar="SHARE", help=LABEL_BUDGET_HELP)
    au.add_argument("--steps", type=int, default=2000)
    au.add_argument("--batch-size", type=int, default=64)
    au.add_argument("--canaries", type=int, default=200)
    au.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    au.add_argument("--seed", type=int, default=0)
    au.add_argument("--out", help="directory for audit.json")
    au.add_argument("--no-progress", action="store_true")
    au.add_argument("--json", action="store_true")
    au.set_defaults(func=cmd_audit)

    ev = sub.add_parser("evaluate", help="fidelity, utility, privacy-attack and fairness report for samples")
    from trustgen.evaluation.command import add_arguments, cmd_evaluate

    add_arguments(ev)
    ev.set_defaults(func=cmd_evaluate)

    sc = sub.add_parser("schema", help="schema tools")
    scs = sc.add_subparsers(dest="schema_command", required=True, parser_class=_Parser)
    si = scs.add_parser("infer", help="draft a schema from a data file (NOT private: review it)")
    si.add_argument("data")
    si.add_argument("--label")
    si.add_argument("--out")
    si.add_argument("--json", action="store_true")
    si.set_defaults(func=cmd_schema_infer)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (TrustgenError, _Fail) as e:
        print(f"trustgen: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
