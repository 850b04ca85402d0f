"""The training loop: device, mixed precision, seeding, progress, checkpoints, resume.

Two objectives are supported, chosen by the model's ``objective``:

* ``"likelihood"`` (VAE, diffusion): one optimiser on ``model.loss(x, y).mean()``.
* ``"adversarial"`` (GAN): a discriminator step on ``model.loss`` (the only part that sees
  real records), then a generator step on ``model.generator_loss`` with labels from a prior.

All randomness comes from two CPU ``torch.Generator`` streams seeded from ``seed``: one
orders the data, one feeds the model's noise. Both are saved in checkpoints, so a run that
is killed and resumed produces the same weights as one that never stopped.

Example:
    >>> import torch
    >>> from trustgen.models import build_model, DataSpec
    >>> m = build_model("vae", DataSpec("tabular", 2, 0, (("numeric", 0, 1), ("numeric", 1, 1))))
    >>> result = Trainer(m, TrainConfig(steps=3, batch_size=4, progress=False)).fit(torch.zeros(8, 2))
    >>> result.steps
    3
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from trustgen.errors import ConfigError, DataError, PrivacyError, RunError, TrainingError
from trustgen.io import atomic_torch_save, safe_torch_load
from trustgen.models.base import GenerativeModel
from trustgen.privacy.accounting import Accountant, calibrate_noise, check_delta, default_delta
from trustgen.privacy.dp_sgd import PrivacyConfig, PrivateGradients, choose_mode, poisson_batch
from trustgen.privacy.report import PrivacyReport

DEFAULT_LR = {"vae": 1e-3, "gan": 2e-4, "diffusion": 1e-3}


@dataclass
class TrainConfig:
    """Settings of a training run (all public: none is derived from private data).

    Attributes:
        epochs: passes over the data (ignored when ``steps`` is set).
        steps: total optimiser steps; overrides ``epochs``.
        lr: learning rate; None picks the family's default.
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"`` / ``"cuda:N"``.
        amp: bfloat16 autocast on CUDA (ignored on CPU).
        checkpoint_every: write a checkpoint every N steps (0: only at the end).
    """

    epochs: int = 100
    steps: int | None = None
    batch_size: int = 128
    lr: float | None = None
    device: str = "auto"
    seed: int = 0
    amp: bool = True
    checkpoint_every: int = 0
    log_every: int = 50
    progress: bool = True

    def validate(self) -> None:
        if self.steps is None and (not isinstance(self.epochs, int) or self.epochs < 1):
            raise ConfigError(f"epochs must be a positive integer, got {self.epochs!r}")
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            raise ConfigError(f"steps must be a positive integer, got {self.steps!r}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {self.batch_size}")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        resolve_device(self.device)


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA if available else CPU; a clear error for CUDA requested without one."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ConfigError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was requested but no CUDA GPU is available; use --device cpu or auto")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"unsupported device {device!r}: use auto, cpu or cuda")
    return dev


@dataclass
class TrainResult:
    steps: int
    history: list = field(default_factory=list)
    privacy: PrivacyReport | None = None


Callback = Callable[["Trainer", int, dict], None]


class Trainer:
    """Trains a :class:`GenerativeModel` on encoded tensors. See the module docstring."""

    def __init__(self, model: GenerativeModel, config: TrainConfig | None = None,
                 callbacks: tuple[Callback, ...] = (), privacy: PrivacyConfig | None = None) -> None:
        self.model = model
        self.config = config or TrainConfig()
        self.callbacks = callbacks
        self.privacy = privacy

    # ------------------------------------------------------------------ privacy plan
    def plan_privacy(self, n: int) -> dict:
        """Sample rate, delta and the noise multiplier calibrated so that the planned steps
        reach the target epsilon exactly (never more)."""
        p, c = self.privacy, self.config
        p.validate()
        if self.model.family == "gan" and self.model.config.r1_gamma > 0:
            raise ConfigError("the R1 gradient penalty cannot be clipped per example by Opacus; "
                              "train a DP GAN with --option r1_gamma=0 (the default under DP)")
        q = c.batch_size / n
        if q > 1:
            raise ConfigError(f"batch size {c.batch_size} exceeds the {n} records; lower --batch-size")
        delta = default_delta(n) if p.delta is None else p.delta
        check_delta(delta, n)
        steps = self.total_steps(n)
        sigma = calibrate_noise(p.epsilon, delta, q, steps, p.accountant)
        return {"sample_rate": q, "delta": delta, "noise_multiplier": sigma, "steps": steps,
                "mode": choose_mode(self.model) if p.clipping == "auto" else p.clipping}

    # ------------------------------------------------------------------ set-up
    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        lr = self.config.lr or DEFAULT_LR.get(self.model.family, 1e-3)
        betas = (0.5, 0.999) if self.model.objective == "adversarial" else (0.9, 0.999)
        return {name: torch.optim.Adam(params, lr=lr, betas=betas)
                for name, params in self.model.parameter_groups().items()}

    def total_steps(self, n: int) -> int:
        c = self.config
        return c.steps if c.steps is not None else c.epochs * math.ceil(n / c.batch_size)

    def _autocast(self, device: torch.device):
        # No autocast under DP: per-example gradient hooks are verified in float32 only.
        if device.type == "cuda" and self.config.amp and self.privacy is None:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # ------------------------------------------------------------------ loop
    def fit(self, x: torch.Tensor, y: torch.Tensor | None = None, *,
            checkpoint: str | Path | None = None, resume: bool = False,
            label_prior: torch.Tensor | None = None) -> TrainResult:
        """Train on encoded data ``x`` (``[N, ...]``) with labels ``y`` (``[N]``) if conditional.

        Args:
            checkpoint: file for periodic checkpoints (written atomically).
            resume: continue from ``checkpoint`` if it exists (same config required).
            label_prior: class probabilities for the GAN generator's labels (uniform if None).
        """
        c = self.config
        c.validate()
        n = len(x)
        if n == 0:
            raise DataError("no training data (0 examples)")
        if y is not None and len(y) != n:
            raise DataError(f"{n} examples but {len(y)} labels")
        device = resolve_device(c.device)
        model = self.model.to(device)
        model.train()
        opts = self._optimizers()
        rank, world = dist_info()
        # Under DP the batch sampling and the DP noise must be unpredictable: they come from
        # a secret seed (OS entropy), never from the public ``seed``. Each rank samples its own
        # shard with its own stream; the DP noise stream is shared by all ranks.
        secret = self._secret_seed() if self.privacy is not None else None
        data_seed = c.seed if secret is None else secret + 1
        data_gen = torch.Generator().manual_seed(data_seed + 7919 * rank)
        noise_gen = torch.Generator().manual_seed(c.seed + 1 + 7919 * rank)
        total = self.total_steps(n)
        self.dp = self.accountant = None
        if self.privacy is not None:
            self.plan = self.plan_privacy(n)
            self.accountant = Accountant(self.privacy.accountant)
            self.dp = PrivateGradients(
                model.private_module(), max_grad_norm=self.privacy.max_grad_norm,
                noise_multiplier=self.plan["noise_multiplier"], expected_batch_size=self.plan["sample_rate"] * n,
                mode=self.plan["mode"], rows_per_example=model.private_rows_per_example(),
                noise_generator=torch.Generator().manual_seed(secret + 2))
        n_local = len(range(rank, n, world))
        state = {"step": 0, "perm": torch.randperm(n_local, generator=data_gen), "pos": 0, "history": []}
        ckpt = Path(checkpoint) if checkpoint is not None else None
        if ckpt is not None and rank > 0:  # each rank keeps its own streams and data position
            ckpt = ckpt.with_name(f"{ckpt.name}.rank{rank}")
        if resume and ckpt is not None and ckpt.exists():
            state = self._load_checkpoint(ckpt, opts, data_gen, noise_gen, n_local, total)
        try:
            return self._loop(model, opts, x, y, label_prior, data_gen, noise_gen, state, total, ckpt, device, n)
        finally:
            if self.dp is not None:
                self.dp.close()

    def _secret_seed(self) -> int:
        """A seed from OS entropy (or the explicit test seed), identical on every rank."""
        import secrets

        seed = self.privacy.secret_seed if self.privacy.secret_seed is not None else secrets.randbits(62)
        if dist_info()[1] > 1:  # rank 0's draw, so all ranks add the same (single) noise
            import torch.distributed as dist

            t = torch.tensor([seed], dtype=torch.int64)
            dist.broadcast(t, src=0)
            seed = int(t.item())
        return seed

    def _next_batch(self, state: dict, n: int, data_gen: torch.Generator) -> torch.Tensor:
        if self.dp is not None:  # Poisson sampling, as the accountant assumes
            return poisson_batch(n, self.plan["sample_rate"], data_gen)
        if state["pos"] >= n:
            state["perm"], state["pos"] = torch.randperm(n, generator=data_gen), 0
        idx = state["perm"][state["pos"]:state["pos"] + self.config.batch_size]
        state["pos"] += self.config.batch_size
        return idx

    def _loop(self, model, opts, x, y, label_prior, data_gen, noise_gen, state, total, ckpt, device, n):
        c = self.config

        rank, world = dist_info()
        shard = torch.arange(rank, n, world)  # records of this rank (all of them when world == 1)
        xs = x[shard].to(device)
        ys = None if y is None else y[shard].to(device)
        n_local = len(shard)
        prior = None if label_prior is None else label_prior.float()
        bar = tqdm(total=total, initial=state["step"], disable=not c.progress or rank > 0, desc=f"train {model.family}",
                   unit="step", dynamic_ncols=True)
        running: dict[str, float] = {}
        if self.accountant is not None and self.accountant.would_exceed(
                self.privacy.epsilon, self.plan["delta"], total - state["step"], self.plan["noise_multiplier"],
                self.plan["sample_rate"]):
            # Cannot happen with a calibrated plan; refuse rather than overspend if it ever does.
            raise PrivacyError(f"the remaining {total - state['step']} steps would exceed epsilon {self.privacy.epsilon}")
        while state["step"] < total:
            idx = self._next_batch(state, n_local, data_gen).to(device)
            xb, yb = xs[idx], None if ys is None else ys[idx]
            with self._autocast(device):
                logs = self._step(model, opts, xb, yb, noise_gen, prior)
            state["step"] += 1
            if self.accountant is not None:
                self.accountant.step(self.plan["noise_multiplier"], self.plan["sample_rate"])
            for k, v in logs.items():
                running[k] = v if k not in running else 0.98 * running[k] + 0.02 * v
            if state["step"] % c.log_every == 0 or state["step"] == total:
                state["history"].append({"step": state["step"], **{k: round(v, 6) for k, v in running.items()}})
                bar.set_postfix({k: f"{v:.4g}" for k, v in running.items()})
            bar.update(1)
            if ckpt is not None and c.checkpoint_every and state["step"] % c.checkpoint_every == 0:
                self._save_checkpoint(ckpt, opts, data_gen, noise_gen, state)
            for cb in self.callbacks:
                # A callback's forward passes must not leave activations for the next DP step.
                with self.dp.hooks_disabled() if self.dp is not None else contextlib.nullcontext():
                    cb(self, state["step"], logs)
        bar.close()
        if ckpt is not None and self.dp is None:
            self._save_checkpoint(ckpt, opts, data_gen, noise_gen, state)
        elif ckpt is not None and ckpt.exists():
            # A DP checkpoint holds the secret noise and sampling streams: once training is
            # complete nothing needs it, and it must not ship with the released run.
            ckpt.unlink()
        model.eval()
        return TrainResult(state["step"], state["history"], self._report())

    def _report(self) -> PrivacyReport | None:
        if self.accountant is None or self.accountant.steps == 0:
            return None
        p = self.privacy
        return PrivacyReport.from_accountant(
            self.accountant, delta=self.plan["delta"], max_grad_norm=p.max_grad_norm, target_epsilon=p.epsilon,
            sampling_scheme="poisson", private_modules=[type(self.model.private_module()).__name__],
            caveats=([] if p.secret_seed is None else [
                         "The DP noise and sampling seed was fixed by the caller (secret_seed): the guarantee "
                         "holds only while that seed stays secret. Use this for tests only."]) + [
                     f"Per-example clipping: Opacus {self.plan['mode']} mode, C = {p.max_grad_norm}.",
                     "The sample rate q = batch_size / n uses the number of records n, treated as public "
                     "(standard in DP-SGD; under add/remove adjacency n itself is not protected).",
                     "Training losses of private batches are not logged (they are not private)."])

    def _step(self, model: GenerativeModel, opts: dict, xb: torch.Tensor, yb: torch.Tensor | None,
              gen: torch.Generator, prior: torch.Tensor | None) -> dict[str, float]:
        """One optimiser step. Under DP the private part goes through ``self.dp`` and its loss
        is not reported (a loss of private records is itself a statistic of them)."""
        d_name = "model" if model.objective == "likelihood" else "discriminator"
        opt = opts[d_name]
        opt.zero_grad(set_to_none=True)
        logs: dict[str, float] = {}
        if self.dp is not None and len(xb) == 0:
            self.dp.noise_only_step()  # an empty Poisson batch still gets its noisy step
        else:
            loss = model.loss(xb, yb, generator=gen).float()
            if self.dp is None:
                _check_finite(loss.detach().mean(), model.family)
                loss.mean().backward()
                _average_gradients(opt)
                logs["loss" if d_name == "model" else "d_loss"] = loss.mean().item()
            else:
                self.dp.backward(loss, opt)
        if self.dp is not None:
            # Inspect only the noised gradient (a DP release), never the private loss.
            for p in opts_params(opt):
                if p.grad is not None and not torch.isfinite(p.grad).all():
                    raise TrainingError("the DP gradient became NaN/inf: training diverged. Lower --lr "
                                        "or --max-grad-norm.")
        opt.step()
        if model.objective == "adversarial":
            g_opt = opts["generator"]
            g_opt.zero_grad(set_to_none=True)
            with self.dp.hooks_disabled() if self.dp is not None else contextlib.nullcontext():
                g_loss = model.generator_loss(self.config.batch_size, prior, generator=gen).float().mean()
                # Only the generator is updated; no real record enters this loss.
                g_loss.backward(inputs=opts_params(g_opt))
            _average_gradients(g_opt)
            g_opt.step()
            logs["g_loss"] = g_loss.item()
        return logs

    # ------------------------------------------------------------------ checkpoints
    def _save_checkpoint(self, path: Path, opts, data_gen, noise_gen, state) -> None:
        atomic_torch_save({
            "format": 1,
            "family": self.model.family,
            "train_config": asdict(self.config),
            "model": self.model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in opts.items()},
            "data_gen": data_gen.get_state(),
            "noise_gen": noise_gen.get_state(),
            "step": state["step"], "perm": state["perm"], "pos": state["pos"],
            "history": state["history"],
            "privacy": None if self.dp is None else {
                "plan": self.plan, "accountant": self.accountant.state_dict(), "noise_gen": self.dp.gen.get_state()},
        }, path)

    def _load_checkpoint(self, path: Path, opts, data_gen, noise_gen, n: int, total: int) -> dict:
        ck = safe_torch_load(path)
        if ck.get("family") != self.model.family:
            raise RunError(f"checkpoint {str(path)!r} is for a {ck.get('family')} model, not {self.model.family}")
        if len(ck["perm"]) != n:
            raise RunError(f"checkpoint {str(path)!r} was made on {len(ck['perm'])} examples, not {n}: "
                           "resume with the same data")
        saved = {k: v for k, v in ck["train_config"].items() if k not in ("progress", "device", "epochs", "steps")}
        now = {k: v for k, v in asdict(self.config).items() if k in saved}
        if saved != now:
            raise RunError(f"checkpoint settings {saved} differ from the current ones {now}: resume with the same settings")
        self.model.load_state_dict(ck["model"])
        for k, o in opts.items():
            o.load_state_dict(ck["optimizers"][k])
        data_gen.set_state(ck["data_gen"])
        noise_gen.set_state(ck["noise_gen"])
        if (ck.get("privacy") is None) != (self.dp is None):
            raise RunError("the checkpoint and this run disagree on differential privacy: resume with the same settings")
        if self.dp is not None:
            if ck["privacy"]["plan"] != self.plan:
                raise RunError(f"checkpoint privacy plan {ck['privacy']['plan']} differs from {self.plan}")
            self.accountant.load_state_dict(ck["privacy"]["accountant"])  # continue, never reset
            self.dp.gen.set_state(ck["privacy"]["noise_gen"])
        if ck["step"] > total:
            warnings.warn(f"checkpoint is at step {ck['step']}, past the planned {total} steps")
        return {"step": ck["step"], "perm": ck["perm"], "pos": ck["pos"], "history": ck["history"]}


def dist_info() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) without torch.distributed."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _average_gradients(opt: torch.optim.Optimizer) -> None:
    """Non-private multi-process training: average gradients over ranks (as DDP does)."""
    rank, world = dist_info()
    if world == 1:
        return
    import torch.distributed as dist

    for p in opts_params(opt):
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad /= world


def opts_params(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for g in opt.param_groups for p in g["params"]]


def _check_finite(loss: torch.Tensor, family: str) -> None:
    if not torch.isfinite(loss):
        raise TrainingError(
            f"the {family} loss became {loss.item()}: training diverged. Lower the learning rate (--lr)."
        )

