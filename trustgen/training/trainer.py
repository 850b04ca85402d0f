"""The training loop: device, mixed precision, seeding, progress, checkpoints, resume.

The objective of each step lives in :mod:`trustgen.training.objectives`, the settings in
:mod:`trustgen.training.config`, resume files in :mod:`trustgen.training.checkpoints`.

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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from trustgen.errors import ConfigError, DataError, PrivacyError, RunError
from trustgen.models.base import GenerativeModel
from trustgen.privacy.accountant import Accountant
from trustgen.privacy.config import PrivacyConfig
from trustgen.privacy.dp_sgd import PrivateGradients, poisson_batch
from trustgen.privacy.label_histogram import private_label_prior
from trustgen.privacy.marginal_histogram import marginal_counts, noisy_marginals, pair_counts
from trustgen.privacy.plan import PrivacyPlan, plan_differences, plan_matches, plan_privacy
from trustgen.privacy.report import PrivacyReport, dp_sgd_caveats
from trustgen.privacy.secure_random import SecureRandom, key_from_seed, new_key
from trustgen.runtime import broadcast_bytes, dist_info, keep_freed_memory, resolve_device
from trustgen.training.checkpoints import LoopState, load_checkpoint, save_checkpoint
from trustgen.training.config import TrainConfig
from trustgen.training.objectives import make_optimizers, train_step


@dataclass
class TrainResult:
    """``label_prior``: the class probabilities training used (and sampling should use): the
    caller's, or under DP with a label budget the DP label histogram; None if neither.
    ``marginals``: under DP with a marginal budget, the release of the feature columns' 1-way
    marginals (:func:`trustgen.privacy.marginal_histogram.marginals_record`); else None."""

    steps: int
    history: list = field(default_factory=list)
    privacy: PrivacyReport | None = None
    label_prior: list[float] | None = None
    marginals: dict | None = None


Callback = Callable[["Trainer", int, dict], None]


class Trainer:
    """Trains a :class:`GenerativeModel` on encoded tensors. See the module docstring."""

    def __init__(self, model: GenerativeModel, config: TrainConfig | None = None,
                 callbacks: tuple[Callback, ...] = (), privacy: PrivacyConfig | None = None,
                 optimizers: Callable[[GenerativeModel], dict] | None = None) -> None:
        """``optimizers``: builds the optimisers by parameter group (``model.parameter_groups()``
        names); None uses Adam at the config's learning rate."""
        self.model = model
        self.config = config or TrainConfig()
        self.callbacks = callbacks
        self.privacy = privacy
        self.make_optimizers = optimizers or (lambda m: make_optimizers(m, self.config.learning_rate(m.family)))

    # ------------------------------------------------------------------ privacy plan
    def plan_privacy(self, n: int, n_classes: int = 0, marginal_bins: tuple[int, ...] = (),
                     pair_cells: tuple[int, ...] = (), privacy: PrivacyConfig | None = None) -> PrivacyPlan:
        """Sample rate, delta and the noise multiplier calibrated so that the planned steps
        (with the label histogram when ``n_classes >= 2`` and the marginal histogram of columns
        of ``marginal_bins`` and pair tables of ``pair_cells``) reach the target epsilon exactly
        (never more). ``privacy``: another configuration than the trainer's (default)."""
        return plan_privacy(privacy or self.privacy, n=n, batch_size=self.config.batch_size,
                            steps=self.config.total_steps(n), model=self.model, n_classes=n_classes,
                            marginal_bins=marginal_bins, pair_cells=pair_cells)

    def _autocast(self, device: torch.device):
        # No autocast under DP: per-example gradient hooks are verified in float32 only.
        if device.type == "cuda" and self.config.amp and self.privacy is None:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # ------------------------------------------------------------------ loop
    def fit(self, x: torch.Tensor, y: torch.Tensor | None = None, *,
            checkpoint: str | Path | None = None, resume: bool = False,
            label_prior: torch.Tensor | None = None, marginal_layout: list | None = None,
            pair_layout: list | None = None) -> TrainResult:
        """Train on encoded data ``x`` (``[N, ...]``) with labels ``y`` (``[N]``) if conditional.

        Args:
            checkpoint: file for periodic checkpoints (written atomically).
            resume: continue from ``checkpoint`` if it exists (same config required).
            label_prior: class probabilities for the GAN generator's labels (uniform if None).
                Under DP with ``label_budget > 0`` and labels, leave it None: the trainer then
                releases the DP label histogram (:mod:`trustgen.privacy.label_histogram`) and
                uses that (returned as ``TrainResult.label_prior``).
            marginal_layout: the feature columns whose 1-way marginals are released under DP
                with ``marginal_budget > 0``
                (:func:`trustgen.privacy.marginal_histogram.marginal_layout`; public, from the
                schema); returned as ``TrainResult.marginals``.
            pair_layout: the pair tables that may be counted in the same release
                (:func:`trustgen.privacy.marginal_histogram.pair_layout`; the plan decides).
        """
        c = self.config
        c.validate()
        n = len(x)
        if n == 0:
            raise DataError("no training data (0 examples)")
        if y is not None and len(y) != n:
            raise DataError(f"{n} examples but {len(y)} labels")
        device = resolve_device(c.device)
        if device.type == "cpu":
            keep_freed_memory()  # every step frees and reallocates the same blocks
        model = self.model.to(device)
        model.train()
        opts = self._checked_optimizers(model)
        rank, world = dist_info()
        # Under DP every random draw of training is unpredictable and independent of the secret
        # batch sizes: batch membership (per rank) and the DP noise (shared by all ranks) come
        # from a secure source under a key from OS entropy, addressed by step, and the model's
        # own noise is reseeded from that source at every step. The public ``seed`` then fixes
        # only the initial weights.
        self.rng = SecureRandom(self._secret_key()) if self.privacy is not None else None
        data_gen = torch.Generator().manual_seed(
            c.seed + 7919 * rank if self.rng is None else self.rng.seed("data-order", 0, rank))
        noise_gen = torch.Generator().manual_seed(c.seed + 1 + 7919 * rank)
        total = c.total_steps(n)
        self.dp = self.accountant = self.plan = None
        if self.privacy is not None:
            plan_inputs = (n, 0 if y is None else self.model.spec.n_classes,
                           tuple(col.bins for col in marginal_layout or ()), tuple(t.cells for t in pair_layout or ()))
            self.plan = self.plan_privacy(*plan_inputs)
            if self.plan.label_segment is not None and label_prior is not None:
                raise ConfigError("under DP with label_budget > 0 the label prior is the DP label histogram: "
                                  "pass label_prior=None, or set label_budget=0 to use your own prior")
            self.accountant = Accountant(self.privacy.accountant)
            self.dp = PrivateGradients(
                model.private_module(), max_grad_norm=self.privacy.max_grad_norm,
                noise_multiplier=self.plan.noise_multiplier, expected_batch_size=self.plan.sample_rate * n,
                mode=self.plan.mode, rows_per_example=model.private_rows_per_example(),
                noise=self.rng, clip_groups=model.clipping_groups())
        n_local = len(range(rank, n, world))
        state = LoopState(0, torch.randperm(n_local, generator=data_gen))
        ckpt = Path(checkpoint) if checkpoint is not None else None
        if ckpt is not None and rank > 0:  # each rank keeps its own streams and data position
            ckpt = ckpt.with_name(f"{ckpt.name}.rank{rank}")
        if resume and ckpt is not None and ckpt.exists():
            state, saved_privacy = load_checkpoint(ckpt, model=self.model, config=c, opts=opts, data_gen=data_gen,
                                                   noise_gen=noise_gen, n=n_local, total=total,
                                                   private=self.dp is not None)
            if self.dp is not None:
                differ = plan_differences(saved_privacy["plan"], self.plan)
                if differ:
                    raise RunError(f"the checkpoint's privacy plan differs from this run's ({', '.join(differ)}): resume with "
                                   "the settings it was trained with, or train afresh"
                                   + self._stated_share_hint(saved_privacy["plan"], plan_inputs))
                if "key" not in saved_privacy:
                    raise RunError(f"checkpoint {str(ckpt)!r} was written by an older trustgen whose DP noise "
                                   "was not cryptographically secure: it cannot be resumed; train again")
                self.accountant.load_state_dict(saved_privacy["accountant"])  # continue, never reset
                self.rng = self.dp.noise = SecureRandom(bytes(saved_privacy["key"].tolist()))
                self.dp.step = state.step
        try:
            self.marginal_layout = marginal_layout
            self.pair_layout = list(pair_layout or ())
            return self._loop(model, opts, x, y, label_prior, data_gen, noise_gen, state, total, ckpt, device, n)
        finally:
            if self.dp is not None:
                self.dp.close()

    def _stated_share_hint(self, saved: dict, plan_inputs: tuple) -> str:
        """How to resume a checkpoint whose marginal share differs from the one this run's plan
        chooses (the plan's rule changed: it used to take the first share worth releasing), where
        stating the checkpoint's share would give its plan exactly; else nothing."""
        was = PrivacyPlan.from_dict(saved).marginal_budget
        if self.privacy.marginal_budget is not None or "marginal_budget" not in saved or was in (0, self.plan.marginal_budget):
            return ""
        try:
            stated = self.plan_privacy(*plan_inputs, privacy=replace(self.privacy, marginal_budget=was))
        except (ConfigError, PrivacyError):
            return ""
        if not plan_matches(saved, stated):
            return ""
        return (f" (the checkpoint's marginal share was {was:g}, this run's plan chooses {self.plan.marginal_budget:g}: "
                f"state the checkpoint's, marginal_budget={was:g} or --marginal-budget {was:g})")

    def _checked_optimizers(self, model: GenerativeModel) -> dict:
        """The optimisers, one per parameter group, each updating only its group's parameters."""
        opts = self.make_optimizers(model)
        groups = model.parameter_groups()
        if not isinstance(opts, dict) or set(opts) != set(groups):
            raise ConfigError(f"optimizers must be a dict with one optimiser per parameter group "
                              f"{sorted(groups)}, got {sorted(opts) if isinstance(opts, dict) else type(opts).__name__}")
        for name, opt in opts.items():
            own = {id(p) for p in groups[name]}
            if any(id(p) not in own for g in opt.param_groups for p in g["params"]):
                raise ConfigError(f"the {name!r} optimiser updates parameters outside the model's {name!r} group")
        return opts

    def _secret_key(self) -> bytes:
        """A 256-bit key from OS entropy (or derived from the explicit test seed), identical on
        every rank (rank 0's draw, so all ranks add the same, single, noise)."""
        seed = self.privacy.secret_seed
        return broadcast_bytes(new_key() if seed is None else key_from_seed(seed))

    def _next_batch(self, state: LoopState, n: int, data_gen: torch.Generator) -> torch.Tensor:
        if self.dp is not None:  # Poisson sampling, as the accountant assumes
            return poisson_batch(n, self.plan.sample_rate, self.rng, state.step, part=dist_info()[0])
        if state.pos >= n:
            state.perm, state.pos = torch.randperm(n, generator=data_gen), 0
        idx = state.perm[state.pos:state.pos + self.config.batch_size]
        state.pos += self.config.batch_size
        return idx

    def _checkpoint(self, path: Path, opts, data_gen, noise_gen, state: LoopState) -> None:
        privacy = None if self.dp is None else {
            "plan": self.plan.to_dict(), "accountant": self.accountant.state_dict(),
            "key": torch.tensor(list(self.rng.key), dtype=torch.uint8)}  # the secret: owner-only file
        save_checkpoint(path, model=self.model, config=self.config, opts=opts, data_gen=data_gen,
                        noise_gen=noise_gen, state=state, privacy=privacy)

    def _loop(self, model, opts, x, y, label_prior, data_gen, noise_gen, state: LoopState, total, ckpt, device, n):
        c = self.config
        rank, world = dist_info()
        shard = torch.arange(rank, n, world)  # records of this rank (all of them when world == 1)
        xs = x[shard].to(device)
        ys = None if y is None else y[shard].to(device)
        n_local = len(shard)
        probs = None if label_prior is None else [float(p) for p in label_prior.tolist()]
        marginals = None
        if self.plan is not None:
            self._account_histograms()
            if self.plan.label_segment is not None:
                probs = private_label_prior(ys, self.model.spec.n_classes, self.plan.label_noise_multiplier, self.rng)
            if self.plan.marginal_segment is not None:
                pairs = pair_counts(xs, ys, self.pair_layout) if self.plan.marginal_pairs else []
                marginals = noisy_marginals(marginal_counts(xs, self.marginal_layout),
                                            self.plan.marginal_noise_multiplier, self.rng, n, pairs)
        prior = None if probs is None else torch.tensor(probs, dtype=torch.float32)
        bar = tqdm(total=total, initial=state.step, disable=not c.progress or rank > 0, desc=f"train {model.family}",
                   unit="step", dynamic_ncols=True)
        running: dict[str, float] = {}
        if self.accountant is not None and self.accountant.would_exceed(
                self.privacy.epsilon, self.plan.delta, total - state.step, self.plan.noise_multiplier,
                self.plan.sample_rate):
            # Cannot happen with a calibrated plan; refuse rather than overspend if it ever does.
            raise PrivacyError(f"the remaining {total - state.step} steps would exceed epsilon {self.privacy.epsilon}")
        while state.step < total:
            idx = self._next_batch(state, n_local, data_gen).to(device)
            xb, yb = xs[idx], None if ys is None else ys[idx]
            if self.rng is not None:  # the model's noise of this step: independent of earlier batch sizes
                noise_gen.manual_seed(self.rng.seed("model-noise", state.step, rank))
            with self._autocast(device):
                logs = train_step(model, opts, xb, yb, noise_gen, prior, c.batch_size, self.dp, n)
            state.step += 1
            if self.accountant is not None:
                self.accountant.step(self.plan.noise_multiplier, self.plan.sample_rate)
            for k, v in logs.items():
                running[k] = v if k not in running else 0.98 * running[k] + 0.02 * v
            if state.step % c.log_every == 0 or state.step == total:
                state.history.append({"step": state.step, **{k: round(v, 6) for k, v in running.items()}})
                bar.set_postfix({k: f"{v:.4g}" for k, v in running.items()})
            bar.update(1)
            if ckpt is not None and c.checkpoint_every and state.step % c.checkpoint_every == 0:
                self._checkpoint(ckpt, opts, data_gen, noise_gen, state)
            for cb in self.callbacks:
                # A callback's forward passes must not leave activations for the next DP step.
                with self.dp.hooks_disabled() if self.dp is not None else contextlib.nullcontext():
                    cb(self, state.step, logs)
        bar.close()
        if ckpt is not None and self.dp is None:
            self._checkpoint(ckpt, opts, data_gen, noise_gen, state)
        elif ckpt is not None and ckpt.exists():
            # A DP checkpoint holds the secret noise and sampling streams: once training is
            # complete nothing needs it, and it must not ship with the released run.
            ckpt.unlink()
        model.eval()
        return TrainResult(state.step, state.history, self._report(), probs, marginals)

    def _account_histograms(self) -> None:
        """The histograms (labels, marginals) released before the first step, accounted once: a
        fresh run records their segments before releasing them; a resumed run's saved history
        already holds them (checked), and the same key and data give back exactly what was
        released before, so it costs nothing more."""
        segments = self.plan.histogram_segments
        history = self.accountant.history
        if not history:
            for segment in segments:
                self.accountant.step(*segment)
            return
        # the accountant merges equal consecutive segments: compare the unmerged records
        flat = [tuple(h[:2]) for h in history for _ in range(int(h[2]))][:len(segments)]
        if flat != [s[:2] for s in segments]:
            raise RunError(f"the checkpoint's accountant history {history[:2]} does not begin with the "
                           f"histograms {segments}: it was not written by this plan; train again")

    def _report(self) -> PrivacyReport | None:
        if self.accountant is None or self.accountant.steps == 0:
            return None
        p = self.privacy
        return PrivacyReport.from_accountant(
            self.accountant, delta=self.plan.delta, max_grad_norm=p.max_grad_norm, target_epsilon=p.epsilon,
            label_noise_multiplier=self.plan.label_noise_multiplier,
            label_budget=0.0 if self.plan.label_segment is None else p.label_budget,
            marginal_noise_multiplier=self.plan.marginal_noise_multiplier,
            marginal_budget=self.plan.marginal_budget,
            marginal_pairs=self.plan.marginal_pairs,
            sampling_scheme="poisson", private_modules=[type(self.model.private_module()).__name__],
            caveats=dp_sgd_caveats(mode=self.plan.mode, max_grad_norm=p.max_grad_norm,
                                   fixed_secret_seed=p.secret_seed is not None) + [
                     "Training losses of private batches are not logged (they are not private)."])
