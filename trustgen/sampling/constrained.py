"""Sampling under constraints: every returned sample satisfies every hard constraint, always.

Methods (``method=``):

* ``"rejection"``: draw, keep what satisfies, draw again for the rest, within a budget of
  draws. Exact: the samples follow the model's distribution conditioned on the constraints
  (labels drawn from the prior are drawn again with each candidate). Fails with a
  :class:`~trustgen.errors.ConstraintError` when the budget is spent, never returns violators.
* ``"projection"``: diffusion projects each step's clean-sample estimate onto the
  constraints (a step hook) and the result at the end; VAE and GAN search the latent space
  first (gradient steps on ``z`` through the soft decode, an extra noise hook) and project
  the output. Soft constraints steer the same gradient steps.
* ``"guidance"``: gradient steps only (diffusion: on each step's clean estimate; VAE/GAN: the
  latent search); no projection. For soft conditions such as classifier thresholds.
* ``"auto"`` (default): a pilot of plain draws (every method but rejection runs one, to report
  the model's rate before repair); if at least :data:`AUTO_ACCEPTANCE` of them satisfy,
  rejection (exact), else projection.

With every method, the decoded values (the data's own units, after decoding's clipping and
rounding) are checked exactly; what fails is repaired in float64 (projection) or drawn
again. The batch's :attr:`~trustgen.sampling.sampler.SampleBatch.constraint_report` records
the method, the draws, and how often the raw model output satisfied each constraint before
any repair. Infeasible sets are reported before any sampling
(:func:`~trustgen.constraints.feasibility.check_feasible`).

Constraints are post-processing of a trained model: they cost no privacy.

Example:
    >>> rules = ConstraintSet([Range("mean radius", high=12)])  # doctest: +SKIP
    >>> batch = ConstrainedSampler(run, rules).sample(1000, seed=0)  # doctest: +SKIP
    >>> batch.constraint_report.method, bool(batch.constraints_satisfied.all())  # doctest: +SKIP
    ('rejection', True)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd
import torch

from trustgen.constraints.atoms import BoxAtom, CategoryAtom, LabelAtom, LinearAtom, all_hold
from trustgen.constraints.feasibility import check_feasible, forced
from trustgen.constraints.language import ConstraintSet, Equals, Implies
from trustgen.constraints.projection import project, to_encoded
from trustgen.constraints.space import Space
from trustgen.data.encoders import ImageData
from trustgen.errors import ConfigError, ConstraintError
from trustgen.sampling.config import SamplerConfig
from trustgen.sampling.constraint_hooks import (
    MCMC_STEPS, SEARCH_STEPS, ConstraintHook, EllipticalSlice, LatentSearch, StepConstraint, Tally,
    deterministic_decode,
)
from trustgen.sampling.labels import class_index
from trustgen.sampling.sampler import SampleBatch, Sampler

Method = Literal["auto", "rejection", "projection", "guidance"]
METHODS = ("auto", "rejection", "projection", "guidance")
AUTO_ACCEPTANCE = 0.1  # auto: rejection when at least this share of pilot draws satisfies
PILOT = 500


@dataclass(frozen=True)
class ConstraintReport:
    """How constrained samples were made.

    Attributes:
        method: the method that produced them (``auto`` resolved).
        hard, soft: the constraints, in words.
        feasibility: how far the hard set was decided feasible before sampling.
        draws: samples generated in all (every candidate, accepted or not).
        returned: samples returned (all satisfy every hard constraint).
        satisfied_before_repair: share of the plain model's draws (the rejection draws, or a
            pilot of them before projection and guidance) whose raw output (unclipped)
            satisfied every hard constraint.
        satisfied_after_decode_before_repair: the same after decoding's clipping and rounding
            (can exceed the raw rate: clipping to the schema hides violations of its bounds).
        per_constraint_before_repair: name -> share of the plain raw draws satisfying it.
        soft_satisfied: name -> share of returned samples satisfying each soft constraint.
        satisfied_after_steering: projection and guidance: share of their draws satisfying every
            hard constraint after the latent search or per-step hooks, before the output's
            projection (None for rejection).
        unmarked: with a watermark, samples whose marked values would break a hard constraint
            and were released with their unmarked values instead.
    """

    method: str
    hard: tuple
    soft: tuple
    feasibility: str
    draws: int
    returned: int
    satisfied_before_repair: float
    satisfied_after_decode_before_repair: float
    per_constraint_before_repair: dict
    soft_satisfied: dict
    satisfied_after_steering: float | None = None
    unmarked: int = 0

    @property
    def acceptance_rate(self) -> float:
        return self.returned / self.draws if self.draws else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "hard": list(self.hard), "soft": list(self.soft),
                "acceptance_rate": self.acceptance_rate}


class ConstrainedSampler:
    """Samples of ``run`` that satisfy ``constraints``.

    Args:
        run: the trained run.
        constraints: a :class:`~trustgen.constraints.language.ConstraintSet` (or a list of
            constraints).
        method: ``"auto"``, ``"rejection"``, ``"projection"`` or ``"guidance"``.
        budget: the most samples to generate in all for one call (default ``100 * n + 10,000``).
        search_steps: VAE/GAN, projection and guidance: gradient steps of the latent search (0: none,
            the output is projected directly: the fastest).
        mcmc_steps: projection and guidance: elliptical slice steps from each feasible latent
            (0: none), bringing samples towards the model's conditional distribution; only
            where the decode is a function of the latent (see :func:`deterministic_decode`).
        config, noise_hooks, batch_size: as for :class:`Sampler`.
        progress: called as ``progress(done, n)`` with the samples accepted so far.

    Raises ConfigError for constraints that do not fit the run's schema and ConstraintError
    for hard constraints that cannot hold together, both before any sampling.
    """

    def __init__(self, run, constraints, *, method: Method = "auto", budget: int | None = None, config=None,
                 noise_hooks: Sequence = (), batch_size: int = 1000, progress=None,
                 search_steps: int = SEARCH_STEPS, mcmc_steps: int = MCMC_STEPS,
                 marginal_fit: bool | None = None) -> None:
        if method not in METHODS:
            raise ConfigError(f"unknown constraint method {method!r} (known: {', '.join(METHODS)})")
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
            raise ConfigError(f"budget must be a positive integer (samples to draw), got {budget!r}")
        for name, v in (("search_steps", search_steps), ("mcmc_steps", mcmc_steps)):
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 100_000:
                raise ConfigError(f"{name} must be an integer from 0 to 100,000, got {v!r}")
        self.run, self.method, self.budget = run, method, budget
        self.marginal_fit = marginal_fit  # passed to every Sampler (trustgen.sampling.marginal_fit)
        self.search_steps, self.mcmc_steps = search_steps, mcmc_steps
        self.constraints = constraints if isinstance(constraints, ConstraintSet) else ConstraintSet(constraints)
        modules_to(self.constraints.constraints, run.model.device)
        self.space = Space(run.schema)
        self.atoms = self.constraints.compile(self.space)
        self.feasibility = check_feasible(self.atoms, self.space)
        self.hard = [a for a in self.atoms if a.hard]
        self.soft = [a for a in self.atoms if not a.hard]
        self.encoded = to_encoded(self.atoms + forced(self.atoms, self.space), self.space)
        # An equality on a continuous value holds with probability 0 under the model: rejection
        # would spend any budget; projection meets it.
        self.measure_zero = [a.name for a in self.hard if isinstance(a, LinearAtom) and a.op == "=="
                             and not self.space.integer[np.flatnonzero(a.a)].all()] + \
            [a.name for a in self.hard if isinstance(a, BoxAtom) and bool(np.all(a.high - a.low <= 2 * a.tol))
             and not self.space.integer[a.coords].all()]
        if method == "rejection" and self.measure_zero:
            raise ConfigError(f"rejection cannot meet {self.measure_zero[0]!r}: a continuous value equals a number "
                              "with probability 0; use method 'projection' (or 'auto')")
        labels = [a for a in self.hard if isinstance(a, LabelAtom)]
        self.allowed_labels = None
        if labels:
            allowed = set(range(run.schema.n_classes))
            for a in labels:
                allowed &= set(a.allowed)
            self.allowed_labels = sorted(allowed)
        self.config = config if config is not None else SamplerConfig.from_dict(run.sampling)
        self.noise_hooks = tuple(noise_hooks)
        self.batch_size, self.progress = batch_size, progress

    # ---- the samplers each method uses
    def _sampler(self, method: str, tally: Tally) -> Sampler:
        model = self.run.model
        hook = ConstraintHook(self.space, self.atoms, self.encoded, tally, project_output=method == "projection")
        steps, noise = (), self.noise_hooks
        moving = [a for a in self.encoded if not isinstance(a, LabelAtom)]
        if method in ("projection", "guidance"):
            # The chain targets the model under the hard rules: it would undo the steering towards soft
            # ones, and with no hard rule (but labels) to keep it has nothing to do.
            mcmc = (self.mcmc_steps > 0 and deterministic_decode(self.run, self.config) and not self.soft
                    and any(not isinstance(a, LabelAtom) for a in self.hard))
            if self.run.family == "diffusion":
                step = StepConstraint(model, moving, mode="project" if method == "projection" else "guide")
                steps = (step,)
                if mcmc:  # feasible starts from the step hook, then the chain on x_T
                    noise = noise + (EllipticalSlice(model, self.space, self.hard, self.config, steps=self.mcmc_steps,
                                                     step_hook=step),)
            else:
                if self.search_steps:
                    noise = noise + (LatentSearch(model, moving, steps=self.search_steps),)
                if mcmc:
                    noise = noise + (EllipticalSlice(model, self.space, self.hard, self.config,
                                                     steps=self.mcmc_steps),)
        return Sampler(self.run, config=self.config, noise_hooks=noise, step_hooks=steps, output_hooks=(hook,),
                       batch_size=self.batch_size, marginal_fit=self.marginal_fit)

    def _labels_for(self, labels: Any, n: int, gen: torch.Generator, weights: np.ndarray | None = None,
                    ) -> np.ndarray | None:
        """Per-sample labels: the given ones (checked against the label constraints) or ``n``
        draws from the run's prior restricted to the allowed classes (times ``weights``)."""
        classes = self.run.schema.classes
        if not classes:
            if labels is not None:
                raise ConfigError("this run's model is unconditional: it takes no labels")
            return None
        if labels is not None:
            if isinstance(labels, (str, int, np.integer)):
                y = np.full(n, class_index(labels, classes))
            else:
                y = np.array([class_index(v, classes) for v in labels])
                if len(y) != n:
                    raise ConfigError(f"{n} samples but {len(y)} labels")
            if self.allowed_labels is not None and not np.isin(y, self.allowed_labels).all():
                raise ConstraintError("the labels asked for break the label constraints "
                                      f"(allowed classes: {[classes[i] for i in self.allowed_labels]})")
            return y
        prior = torch.as_tensor(self.run.label_prior if self.run.label_prior is not None
                                else np.ones(len(classes)), dtype=torch.float64)
        if self.allowed_labels is not None:
            keep = torch.zeros(len(classes), dtype=torch.bool)
            keep[self.allowed_labels] = True
            prior = prior * keep
        if weights is not None and float((prior * torch.as_tensor(weights)).sum()) > 0:
            prior = prior * torch.as_tensor(weights)
        return torch.multinomial(prior / prior.sum(), n, replacement=True, generator=gen).numpy()

    def sample(self, n: int, *, labels: Any = None, seed: int | None = None) -> SampleBatch:
        """``n`` samples satisfying every hard constraint (labels as for :meth:`Sampler.sample`)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigError(f"the number of samples must be a positive integer, got {n!r}")
        n = int(n)
        budget = self.budget if self.budget is not None else 100 * n + 10_000
        gen = torch.Generator()
        gen.manual_seed(seed) if seed is not None else gen.seed()
        fixed = labels is not None
        slot_labels = self._labels_for(labels, n, gen)
        plain, steered = Tally([a.name for a in self.hard]), Tally([a.name for a in self.hard])
        weights = None  # of the prior's labels, for projection and guidance
        method, pilot_rate, draws = self.method, None, 0
        if method != "rejection":  # a pilot of plain draws: the model before any repair, and auto's choice
            m = max(1, min(PILOT, max(n, 100), budget // 2))  # half the budget at most: the rest samples
            pilot_labels = None if slot_labels is None else np.resize(slot_labels, m)  # the asked-for labels, cycled
            pilot, pilot_ok = self._draw(self._sampler("rejection", plain), m, pilot_labels, fixed, gen)
            pilot_rate = float(pilot_ok.mean())
            draws += m
            if not fixed and pilot.labels is not None:
                # Projection keeps every label it is given, rejection keeps the labels under which the rules
                # hold: the conditional label mix is prior(y) * P(rules | y); P is estimated on the pilot,
                # shrunk towards the pooled rate (5 pseudo-draws) so that no class is ruled out by chance
                # (no reweighting when no pilot draw satisfied the rules: nothing to estimate from).
                k = self.run.schema.n_classes
                hits = np.bincount(pilot.labels[pilot_ok], minlength=k)
                tries = np.bincount(pilot.labels, minlength=k)
                pooled = hits.sum() / max(tries.sum(), 1)  # each class's rate, shrunk to the pooled one
                weights = (hits + 5 * pooled) / (tries + 5) if hits.sum() else None
            if method == "auto":
                exact = pilot_rate >= AUTO_ACCEPTANCE and not self.measure_zero
                method = "rejection" if exact else "projection"
        sampler = self._sampler(method, plain if method == "rejection" else steered)
        rate = 1.0 if pilot_rate is None or method != "rejection" else max(pilot_rate, 1e-3)
        chosen: list = [None] * n
        pending = np.arange(n)
        while len(pending):
            left = budget - draws
            if left <= 0:
                self._out_of_budget(n - len(pending), n, draws, plain, method)
            # rejection draws about what the acceptance rate seen so far needs (exactly n when all pass)
            per_slot = 1 if method != "rejection" or rate >= 0.9 else min(math.ceil(1.1 / rate), 1000)
            count = min(len(pending) * per_slot, left, max(self.batch_size, len(pending)))
            slots = pending if count >= len(pending) * per_slot else pending[:max(1, count // per_slot)]
            want = np.repeat(slots, per_slot)[:count]
            batch, ok = self._draw(sampler, len(want), None if slot_labels is None else slot_labels[want], fixed,
                                   gen, None if method == "rejection" else weights)
            draws += len(want)
            rate = max(float(ok.mean()), 1e-3) if method == "rejection" else rate
            good = np.flatnonzero(ok)
            if fixed:  # a candidate fills its own slot (its label was asked for)
                for slot in slots:
                    cand = good[want[good] == slot]
                    if len(cand):
                        chosen[slot] = (batch, int(cand[0]))
            else:  # any candidate fills any slot (labels came from the prior with each draw)
                for slot, c in zip(slots, good):
                    chosen[slot] = (batch, int(c))
            pending = np.array([i for i in pending if chosen[i] is None], dtype=np.int64)
            if self.progress is not None:
                self.progress(n - len(pending), n)
        out = _assemble(chosen)
        u = self.space.data_units(out.data)
        y = None if out.labels is None else torch.as_tensor(out.labels)
        if not bool(all_hold(self.hard, u, y).all()):  # the guarantee, checked once more on the result
            raise AssertionError("a returned sample breaks a hard constraint")  # pragma: no cover
        seen = max(plain.seen, 1)
        report = ConstraintReport(
            method, tuple(a.name for a in self.hard), tuple(a.name for a in self.soft), self.feasibility, draws, n,
            plain.raw / seen, plain.decoded / seen, {k: float(v) / seen for k, v in zip(plain.names, plain.each)},
            {a.name: float(a.holds(u, y).double().mean()) for a in self.soft},
            None if not steered.seen else steered.decoded / steered.seen)
        return replace(out, seed=seed, constraints_satisfied=np.ones(n, dtype=bool), constraint_report=report)

    def _draw(self, sampler: Sampler, m: int, labels, fixed: bool, gen, weights=None,
              ) -> tuple[SampleBatch, np.ndarray]:
        """``m`` candidates and whether each satisfies every hard constraint (decoded values,
        checked exactly; projection repairs in float64 what the float32 output lost). Labels
        not ``fixed`` are drawn afresh from the prior (times ``weights``)."""
        if labels is not None and not fixed:  # prior labels: drawn afresh with every candidate
            labels = self._labels_for(None, m, gen, weights)
        seed = int(torch.randint(2 ** 62, (1,), generator=gen))
        batch = sampler.sample(m, labels=None if labels is None else [int(v) for v in labels], seed=seed)
        if isinstance(batch.data, ImageData):  # the values a file stores (float32): the ones checked and returned
            batch = replace(batch, data=ImageData(batch.data.x.astype(np.float32).astype(np.float64), batch.data.y))
        y = None if batch.labels is None else torch.as_tensor(batch.labels)
        u = self.space.data_units(batch.data)
        ok = all_hold(self.hard, u, y)
        if sampler.output_hooks[0].project_output and not bool(ok.all()):
            bad = torch.nonzero(~ok).ravel()
            x = project(self.encoded, self.space.from_units(u[bad]), None if y is None else y[bad])
            fixed_rows = self.space.units_to_data(self.space.to_units(x), None if y is None else y[bad].numpy())
            u_new = self.space.data_units(fixed_rows)
            now = all_hold(self.hard, u_new, None if y is None else y[bad])
            batch = _replace_rows(batch, bad[now].numpy(), _take_data(fixed_rows, np.flatnonzero(now.numpy())),
                                  self.space.from_units(u_new[now]))
            ok[bad[now]] = True
        return batch, ok.numpy()

    def satisfied(self, data, labels=None) -> np.ndarray:
        """Per sample of decoded ``data``: does it satisfy every hard constraint (exactly)?"""
        y = None if labels is None else torch.as_tensor(np.asarray(labels))
        return all_hold(self.hard, self.space.data_units(data), y).numpy()

    def keep_satisfying(self, edited: SampleBatch, original: SampleBatch) -> SampleBatch:
        """``edited`` (e.g. watermarked values) with the rows that no longer satisfy every hard
        constraint put back as they were in ``original``: an edit never breaks the guarantee."""
        bad = np.flatnonzero(~self.satisfied(edited.data, edited.labels))
        out = _replace_rows(edited, bad, _take_data(original.data, bad), original.encoded[torch.as_tensor(bad)])
        if out.constraint_report is not None:
            out = replace(out, constraint_report=replace(out.constraint_report, unmarked=len(bad)))
        return out

    def _out_of_budget(self, done, n, draws, tally: Tally, method):
        seen = max(tally.seen, 1)
        worst = sorted(zip(tally.each / seen, tally.names))[:2]
        hint = "; ".join(f"{name!r} held in {rate:.2%} of draws" for rate, name in worst)
        other = "use method 'projection', " if method == "rejection" else ""
        raise ConstraintError(
            f"sampling budget spent: {draws:,} draws gave {done:,} of {n:,} samples that satisfy every hard "
            f"constraint ({method}; {hint}). Raise the budget, {other}or check that the model can produce such "
            "samples")

    def sample_groups(self, n: int, column: str, *, groups: Sequence | None = None, seed: int | None = None,
                      ) -> SampleBatch:
        """``n`` samples with equal counts per group of ``column`` (a categorical column or the
        label; ``groups``: which of its categories, default all), shuffled: a target balance."""
        schema = self.run.schema
        by_label = self.space.is_label(column)
        if by_label:
            if not schema.classes:
                raise ConfigError("this run's model has no label to balance")
            cats = [schema.classes[i] for i in (self.allowed_labels if self.allowed_labels is not None
                                                 else range(len(schema.classes)))]
        else:
            start, declared = self.space.category_block(column)
            allowed = set(range(len(declared)))
            for a in self.hard:  # only the categories the constraints allow
                if isinstance(a, CategoryAtom) and a.start == start:
                    allowed &= set(a.allowed)
            cats = [declared[i] for i in sorted(allowed)]
        groups = cats if groups is None else list(groups)
        if not groups:
            raise ConfigError(f"sample_groups: no category of {column!r} is allowed by the constraints")
        counts = [n // len(groups) + (i < n % len(groups)) for i in range(len(groups))]
        rng = np.random.default_rng(seed)
        parts = []
        for g, k in zip(groups, counts):
            if k == 0:
                continue
            s = int(rng.integers(2 ** 62))
            if by_label:
                parts.append(self.sample(k, labels=g, seed=s))
            else:
                extra = ConstrainedSampler(self.run, list(self.constraints.constraints) + [Equals(column, g)],
                                           method=self.method, budget=self.budget, config=self.config,
                                           noise_hooks=self.noise_hooks, batch_size=self.batch_size,
                                           search_steps=self.search_steps, mcmc_steps=self.mcmc_steps)
                parts.append(extra.sample(k, seed=s))
        order = rng.permutation(n)
        rows = [(b, i) for b in parts for i in range(len(b.encoded))]
        out = _assemble([rows[j] for j in order])
        report = merge_reports([b.constraint_report for b in parts], hard=tuple(a.name for a in self.hard))
        return replace(out, seed=seed, constraints_satisfied=np.ones(n, dtype=bool), constraint_report=report)


def merge_reports(reports: list, hard: tuple | None = None) -> ConstraintReport:
    """One report for samples made by several calls: draws and returns summed, rates weighted
    by draws (raw rates) or by samples returned (soft rules), methods joined (``a+b``)."""
    draws = sum(r.draws for r in reports)
    returned = sum(r.returned for r in reports)
    first = reports[0]

    def by_draws(get):
        return sum(get(r) * r.draws for r in reports) / max(draws, 1)

    steered = [r for r in reports if r.satisfied_after_steering is not None]
    return ConstraintReport(
        "+".join(dict.fromkeys(r.method for r in reports)), first.hard if hard is None else hard, first.soft,
        first.feasibility, draws, returned, by_draws(lambda r: r.satisfied_before_repair),
        by_draws(lambda r: r.satisfied_after_decode_before_repair),
        {k: by_draws(lambda r: r.per_constraint_before_repair.get(k, 0.0)) for k in first.per_constraint_before_repair},
        {k: sum(r.soft_satisfied[k] * r.returned for r in reports) / max(returned, 1) for k in first.soft_satisfied},
        None if not steered else sum(r.satisfied_after_steering * r.draws for r in steered) / sum(r.draws for r in steered),
        sum(r.unmarked for r in reports))


def _take_data(data, rows: np.ndarray):
    if isinstance(data, ImageData):
        return ImageData(data.x[rows], None if data.y is None else data.y[rows])
    return data.iloc[rows].reset_index(drop=True)


def _replace_rows(batch: SampleBatch, rows: np.ndarray, data, encoded: torch.Tensor) -> SampleBatch:
    if not len(rows):
        return batch
    if isinstance(batch.data, ImageData):
        x = batch.data.x.copy()
        x[rows] = data.x
        new = ImageData(x, batch.data.y)
    else:
        new = batch.data.copy()
        new.iloc[rows] = data.to_numpy() if len(data.columns) else data
        for c in new.columns:  # keep the column dtypes
            new[c] = new[c].astype(batch.data[c].dtype)
    enc = batch.encoded.clone()
    enc[torch.as_tensor(rows)] = encoded.to(enc.dtype).reshape((len(rows),) + enc.shape[1:])
    return replace(batch, data=new, encoded=enc)


def _assemble(chosen: list) -> SampleBatch:
    """One batch of the rows ``[(batch, row), ...]``, in that order."""
    first = chosen[0][0]
    by_batch: dict[int, list] = {}
    for pos, (b, r) in enumerate(chosen):
        by_batch.setdefault(id(b), (b, []))[1].append((pos, r))
    n = len(chosen)
    enc = first.encoded.new_empty((n,) + first.encoded.shape[1:])
    noise = first.noise.new_empty((n,) + first.noise.shape[1:])
    labels = None if first.labels is None else np.empty(n, dtype=first.labels.dtype)
    pieces, positions = [], []
    for b, rows in by_batch.values():
        pos = np.array([p for p, _ in rows])
        idx = np.array([r for _, r in rows])
        enc[torch.as_tensor(pos)] = b.encoded[torch.as_tensor(idx)]
        noise[torch.as_tensor(pos)] = b.noise[torch.as_tensor(idx)]
        if labels is not None:
            labels[pos] = b.labels[idx]
        pieces.append(_take_data(b.data, idx))
        positions.append(pos)
    order = np.argsort(np.concatenate(positions), kind="stable")
    if isinstance(first.data, ImageData):
        x = np.concatenate([p.x for p in pieces])[order]
        data = ImageData(x, None if labels is None else labels.copy())
    else:
        data = pd.concat(pieces, ignore_index=True).iloc[order].reset_index(drop=True)
    return replace(first, data=data, labels=labels, encoded=enc, noise=noise)


def constrained_stream(sampler: ConstrainedSampler, n: int, *, labels: Any = None, seed: int | None = None,
                       balance: str | None = None, chunk: int = 1000):
    """``n`` constrained samples as batches of ``chunk`` (each its own :meth:`ConstrainedSampler.sample`
    call, with a seed derived from ``seed`` and its index), so memory stays flat for any ``n``;
    ``balance``: equal counts per category of that column in every batch."""
    if balance is not None and labels is not None:
        raise ConfigError("--balance draws the groups itself: give no --label with it")
    outer = sampler.progress
    for i, start in enumerate(range(0, n, chunk)):
        m = min(chunk, n - start)
        if outer is not None:  # progress over the whole stream, not per batch
            sampler.progress = lambda done, _, start=start: outer(start + done, n)
        s = None if seed is None else int(np.random.SeedSequence([seed, i]).generate_state(1, np.uint64)[0] >> 2)
        if balance is None:
            yield sampler.sample(m, labels=labels, seed=s)
        else:
            yield sampler.sample_groups(m, balance, seed=s)


def modules_to(constraints, device) -> None:
    """Users' modules (classifier, function) onto the model's device: they see its samples."""
    for c in constraints:
        if isinstance(c, Implies):
            modules_to((c.when, c.then), device)
        for f in (getattr(c, "model", None), getattr(c, "fn", None)):
            if isinstance(f, torch.nn.Module):
                f.to(device)
