"""The privacy report shipped with every trained model: what was guaranteed, and what was not.

A :class:`PrivacyReport` is written next to a model as ``privacy.json``. It states the
(epsilon, delta) guarantee of DP-SGD, the settings that produced it, the privacy unit, and the
caveats a reader needs. :meth:`PrivacyReport.summary` renders it for humans.

JSON format (``"format": "trustgen-privacy-report"``, ``"version": 1``): one object with every
dataclass field. JSON has no infinity, so non-finite floats are written as the **strings**
``"inf"`` / ``"-inf"`` (e.g. ``"epsilon": "inf"`` for a non-private run); every other float is a
JSON number written with Python's shortest round-trip ``repr``, so ``from_json(to_json(r)) == r``
exactly. This is :func:`trustgen.io.json_value`'s rule for infinities, the one every trustgen file
follows. The file is written atomically with :func:`trustgen.io.atomic_write_text` (a temporary
file in the same directory, flushed and fsynced, then moved over the target with
:func:`os.replace`); a failure leaves any previous file untouched and no partial file behind.

Example:
    >>> r = PrivacyReport(accountant="prv", epsilon=6.198, delta=1e-5, target_epsilon=8.0,
    ...                   noise_multiplier=1.0, sample_rate=0.01, steps=10_000, epochs=100.0,
    ...                   max_grad_norm=1.0, private_modules=["generator"])
    >>> r.total_epsilon
    6.198
    >>> PrivacyReport.non_private().epsilon
    inf
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from trustgen.errors import PrivacyError
from trustgen.io import atomic_write_text, json_value, read_json

REPORT_FORMAT = "trustgen-privacy-report"
REPORT_VERSION = 1

SamplingScheme = Literal["poisson", "shuffle"]
SAMPLING_SCHEMES: tuple[str, ...] = ("poisson", "shuffle")
REPORT_ACCOUNTANTS: tuple[str, ...] = ("prv", "rdp", "none")
NON_PRIVATE_MECHANISM = "none (trained without differential privacy)"

_FLOAT_FIELDS = (
    "epsilon",
    "delta",
    "target_epsilon",
    "noise_multiplier",
    "sample_rate",
    "epochs",
    "max_grad_norm",
    "preprocessing_epsilon",
    "label_budget",
    "label_epsilon",
    "label_noise_multiplier",
    "marginal_budget",
    "marginal_epsilon",
    "marginal_noise_multiplier",
)
_OPTIONAL_FIELDS = ("target_epsilon", "max_grad_norm")
#: Fields added after version 1 was first written: a privacy.json without them (an older run) reads
#: with their defaults (no label histogram).
_LATER_FIELDS = ("label_budget", "label_epsilon", "label_noise_multiplier", "marginal_budget", "marginal_epsilon",
                 "marginal_noise_multiplier", "marginal_pairs")


def _as_float(value) -> float:
    """``value`` as a float, NaN where it has none (an integer beyond the float range)."""
    try:
        return float(value)
    except OverflowError:
        return math.nan


def _short(value) -> str:
    """``repr(value)`` cut to 40 characters: a damaged file's number can have thousands of digits."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(kw_only=True)
class PrivacyReport:
    """The (epsilon, delta) guarantee of one training run, with its settings and caveats.

    Attributes:
        mechanism: ``"DP-SGD"``, or :data:`NON_PRIVATE_MECHANISM` for a run without DP.
        accountant: ``"prv"``, ``"rdp"``, or ``"none"`` (non-private).
        epsilon: Epsilon spent by training (``inf`` if and only if non-private).
        delta: Delta of the guarantee (0 < delta < 1; 1.0 for a non-private run: no guarantee).
        target_epsilon: The budget the run was calibrated for, if any.
        noise_multiplier: sigma (noise std / clipping norm); 0.0 when non-private.
        sample_rate: Poisson sample rate q (expected batch size / records).
        steps: Number of noisy steps taken.
        epochs: ``steps * sample_rate`` (passes over the data, in expectation).
        max_grad_norm: Per-example clipping norm C; ``None`` when non-private.
        sampling_scheme: ``"poisson"`` (what the accountant assumes) or ``"shuffle"`` (fixed-size
            shuffled batches: the reported epsilon is then *not* a proven guarantee).
        privacy_unit: What one neighbouring dataset differs by.
        preprocessing_epsilon: Pure-DP epsilon spent before training (e.g. a DP schema or DP
            quantiles); composes additively with ``epsilon`` (see :attr:`total_epsilon`).
        private_modules: Names of the modules trained with DP-SGD.
        caveats: Free-text caveats, shown verbatim by :meth:`summary`.
        label_budget: The share of the target epsilon given to the DP label histogram (0: none).
        label_epsilon: Epsilon of the label histogram *alone* (same accountant and delta). It is
            already inside ``epsilon``, which composes histogram and DP-SGD steps in one
            accountant (not a sum); shown to say what the share bought.
        label_noise_multiplier: sigma of the label histogram's Gaussian (sensitivity 1); 0.0 when
            no histogram was released. ``steps``, ``noise_multiplier``, ``sample_rate`` and
            ``epochs`` describe the DP-SGD steps only.
        marginal_budget, marginal_epsilon, marginal_noise_multiplier: the same for the DP
            histogram of the feature columns' 1-way marginals
            (:mod:`trustgen.privacy.marginal_histogram`; noise ``sigma * sqrt(d)`` on each count
            of ``d`` columns, L2 sensitivity ``sqrt(d)``); 0.0 when none was released.
        marginal_pairs: the number of 2-way tables (pairs of columns) counted in that release
            (then the sensitivity is ``sqrt(d + PAIR_WEIGHT^2 P)``); 0: 1-way marginals only.
    """

    mechanism: str = "DP-SGD"
    accountant: str
    epsilon: float
    delta: float
    target_epsilon: float | None = None
    noise_multiplier: float
    sample_rate: float
    steps: int
    epochs: float
    max_grad_norm: float | None
    sampling_scheme: SamplingScheme = "poisson"
    privacy_unit: str = "one record (add/remove)"
    preprocessing_epsilon: float = 0.0
    private_modules: list[str] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)
    label_budget: float = 0.0
    label_epsilon: float = 0.0
    label_noise_multiplier: float = 0.0
    marginal_budget: float = 0.0
    marginal_epsilon: float = 0.0
    marginal_noise_multiplier: float = 0.0
    marginal_pairs: int = 0

    def __post_init__(self) -> None:
        self.validate()

    # -- constructors -----------------------------------------------------------------------

    @classmethod
    def non_private(
        cls,
        *,
        steps: int = 0,
        epochs: float = 0.0,
        sample_rate: float = 0.0,
        sampling_scheme: SamplingScheme = "shuffle",
        caveats: list[str] | None = None,
    ) -> PrivacyReport:
        """Report for a model trained **without** differential privacy (epsilon = inf).

        Example:
            >>> r = PrivacyReport.non_private(steps=500, epochs=5.0)
            >>> r.is_private, r.epsilon
            (False, inf)
        """
        base = [
            "This model was trained WITHOUT differential privacy: there is no privacy guarantee "
            "(epsilon = inf). It can memorise and reproduce training records."
        ]
        return cls(
            mechanism=NON_PRIVATE_MECHANISM,
            accountant="none",
            epsilon=math.inf,
            delta=1.0,
            target_epsilon=None,
            noise_multiplier=0.0,
            sample_rate=sample_rate,
            steps=steps,
            epochs=epochs,
            max_grad_norm=None,
            sampling_scheme=sampling_scheme,
            privacy_unit="none",
            preprocessing_epsilon=0.0,
            private_modules=[],
            caveats=base + list(caveats or []),
        )

    @classmethod
    def from_accountant(
        cls,
        accountant: Any,
        *,
        delta: float,
        max_grad_norm: float,
        target_epsilon: float | None = None,
        epochs: float | None = None,
        sampling_scheme: SamplingScheme = "poisson",
        privacy_unit: str = "one record (add/remove)",
        preprocessing_epsilon: float = 0.0,
        private_modules: list[str] | None = None,
        caveats: list[str] | None = None,
        label_noise_multiplier: float | None = None,
        label_budget: float = 0.0,
        marginal_noise_multiplier: float | None = None,
        marginal_budget: float = 0.0,
        marginal_pairs: int = 0,
    ) -> PrivacyReport:
        """Report from a :class:`trustgen.privacy.accountant.Accountant` at the end of training.

        If sigma or q changed during training, the report shows the smallest sigma and largest q
        (the epsilon still accounts for the exact history) and adds a caveat saying so.

        With ``label_noise_multiplier``, the history must begin with the label histogram's
        segment ``(label_noise_multiplier, 1.0, 1)``: epsilon is that of the whole history, and
        the DP-SGD fields (steps, sigma, q, epochs) describe the rest. With
        ``marginal_noise_multiplier`` its segment follows (after the label histogram's, if any).

        Example:
            >>> from trustgen.privacy.accountant import Accountant
            >>> acc = Accountant("rdp"); acc.step(1.0, 0.01, n=10_000)
            >>> r = PrivacyReport.from_accountant(acc, delta=1e-5, max_grad_norm=1.0)
            >>> round(r.epsilon, 3), r.epochs
            (6.713, 100.0)
            >>> acc = Accountant("rdp"); acc.step(65.0, 1.0); acc.step(1.0, 0.01, n=10_000)
            >>> r = PrivacyReport.from_accountant(acc, delta=1e-5, max_grad_norm=1.0, label_noise_multiplier=65.0)
            >>> r.steps, round(r.label_epsilon, 3), round(r.epsilon, 3)  # composed: 0.05 alone adds < 0.001
            (10000, 0.05, 6.713)
        """
        from trustgen.privacy.accounting import epsilon_of_history

        history = list(accountant.history)
        alone = {}
        for name, sigma in (("label histogram", label_noise_multiplier),
                            ("marginal histogram", marginal_noise_multiplier)):
            if sigma is None:
                continue
            segment = (float(sigma), 1.0, 1)
            if not history or tuple(history[0][:2]) != segment[:2]:
                raise PrivacyError(
                    f"the accountant's history {history[:1]} does not begin with the {name} "
                    f"{segment}: its epsilon would be missing from the report.")
            alone[name] = epsilon_of_history([segment], delta, accountant.kind)
            # The rest follows (a merged first segment keeps its remaining steps).
            first = (history[0][0], history[0][1], history[0][2] - 1)
            history = ([first] if first[2] > 0 else []) + list(history[1:])
        if not history:
            raise PrivacyError(
                "the accountant has recorded no steps: there is nothing to report. Record each "
                "noisy step with Accountant.step(noise_multiplier, sample_rate)."
            )
        notes = list(caveats or [])
        sigma = min(seg[0] for seg in history)
        q = max(seg[1] for seg in history)
        steps = sum(seg[2] for seg in history)
        if len({(seg[0], seg[1]) for seg in history}) > 1:
            notes.append(
                "The noise multiplier or sample rate changed during training; shown are the smallest "
                "noise multiplier and the largest sample rate. Epsilon accounts for the exact history."
            )
        if epochs is None:
            epochs = float(sum(seg[1] * seg[2] for seg in history))
        return cls(
            accountant=accountant.kind,
            epsilon=float(accountant.epsilon(delta)),
            delta=delta,
            target_epsilon=target_epsilon,
            noise_multiplier=sigma,
            sample_rate=q,
            steps=steps,
            epochs=epochs,
            max_grad_norm=max_grad_norm,
            sampling_scheme=sampling_scheme,
            privacy_unit=privacy_unit,
            preprocessing_epsilon=preprocessing_epsilon,
            private_modules=list(private_modules or []),
            caveats=notes,
            label_budget=label_budget,
            label_epsilon=alone.get("label histogram", 0.0),
            label_noise_multiplier=0.0 if label_noise_multiplier is None else label_noise_multiplier,
            marginal_budget=marginal_budget,
            marginal_epsilon=alone.get("marginal histogram", 0.0),
            marginal_noise_multiplier=0.0 if marginal_noise_multiplier is None else marginal_noise_multiplier,
            marginal_pairs=marginal_pairs,
        )

    # -- derived ------------------------------------------------------------------------------

    @property
    def is_private(self) -> bool:
        """True when the report carries a finite-epsilon guarantee."""
        return math.isfinite(self.total_epsilon)

    @property
    def total_epsilon(self) -> float:
        """``epsilon + preprocessing_epsilon`` (basic composition; preprocessing is pure DP)."""
        return self.epsilon + self.preprocessing_epsilon

    # -- validation ---------------------------------------------------------------------------

    def validate(self) -> None:
        """Check every field; raise :class:`PrivacyError` naming the first bad one."""
        for name in ("mechanism", "accountant", "privacy_unit", "sampling_scheme"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise PrivacyError(f"PrivacyReport.{name} must be a non-empty string, got {value!r}.")
        if self.accountant not in REPORT_ACCOUNTANTS:
            raise PrivacyError(
                f"PrivacyReport.accountant must be one of {REPORT_ACCOUNTANTS}, got {self.accountant!r}."
            )
        if self.sampling_scheme not in SAMPLING_SCHEMES:
            raise PrivacyError(
                f"PrivacyReport.sampling_scheme must be one of {SAMPLING_SCHEMES}, got "
                f"{self.sampling_scheme!r}."
            )
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if value is None and name in _OPTIONAL_FIELDS:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(_as_float(value)):
                raise PrivacyError(f"PrivacyReport.{name} must be a number, got {_short(value)}.")
            setattr(self, name, float(value))  # normalise numpy / int to a Python float
        if isinstance(self.steps, bool) or not isinstance(self.steps, numbers.Integral) or self.steps < 0:
            raise PrivacyError(f"PrivacyReport.steps must be an integer >= 0, got {self.steps!r}.")
        self.steps = int(self.steps)
        if isinstance(self.marginal_pairs, bool) or not isinstance(self.marginal_pairs, numbers.Integral) \
                or self.marginal_pairs < 0 or (self.marginal_pairs and not self.marginal_noise_multiplier > 0):
            raise PrivacyError(f"PrivacyReport.marginal_pairs must be an integer >= 0 (0 without a marginal "
                               f"histogram), got {self.marginal_pairs!r}.")
        self.marginal_pairs = int(self.marginal_pairs)
        for name in ("private_modules", "caveats"):
            value = getattr(self, name)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise PrivacyError(f"PrivacyReport.{name} must be a list of strings, got {value!r}.")

        if self.epsilon < 0:
            raise PrivacyError(f"PrivacyReport.epsilon must be >= 0, got {self.epsilon!r}.")
        if not (0.0 <= self.epochs < math.inf):
            raise PrivacyError(f"PrivacyReport.epochs must be finite and >= 0, got {self.epochs!r}.")
        if not (0.0 <= self.sample_rate <= 1.0):
            raise PrivacyError(f"PrivacyReport.sample_rate must be in [0, 1], got {self.sample_rate!r}.")
        if not (self.preprocessing_epsilon >= 0.0):
            raise PrivacyError(
                f"PrivacyReport.preprocessing_epsilon must be >= 0 (inf if preprocessing was not "
                f"private), got {self.preprocessing_epsilon!r}."
            )
        for part in ("label", "marginal"):
            budget, eps, sigma = (getattr(self, f"{part}_{f}") for f in ("budget", "epsilon", "noise_multiplier"))
            if not (0.0 <= budget < 1.0):
                raise PrivacyError(f"PrivacyReport.{part}_budget must be in [0, 1), got {budget!r}.")
            for name, value in ((f"{part}_epsilon", eps), (f"{part}_noise_multiplier", sigma)):
                if not (0.0 <= value < math.inf):
                    raise PrivacyError(f"PrivacyReport.{name} must be finite and >= 0, got {value!r}.")
            if (sigma > 0) != (eps > 0):
                raise PrivacyError(f"PrivacyReport.{part}_epsilon and {part}_noise_multiplier must both be 0 (no "
                                   f"{part} histogram) or both > 0.")
            if eps > self.epsilon:
                raise PrivacyError(f"PrivacyReport.{part}_epsilon {eps!r} exceeds epsilon {self.epsilon!r}, which "
                                   "composes it with training: the report is inconsistent.")
        if self.target_epsilon is not None and not (0.0 < self.target_epsilon < math.inf):
            raise PrivacyError(
                f"PrivacyReport.target_epsilon must be a finite number > 0 or None, got {self.target_epsilon!r}."
            )

        if self.accountant == "none":
            if math.isfinite(self.epsilon):
                raise PrivacyError(
                    f"a report with accountant 'none' is a non-private run and must have epsilon = inf, "
                    f"got {self.epsilon!r}. Use PrivacyReport.non_private()."
                )
            return
        # a DP run
        if not math.isfinite(self.epsilon):
            raise PrivacyError(
                "epsilon is inf but an accountant is named: a run without a finite guarantee must be "
                "reported with PrivacyReport.non_private()."
            )
        if not (0.0 < self.delta < 1.0):
            raise PrivacyError(f"PrivacyReport.delta must be in (0, 1) for a DP run, got {self.delta!r}.")
        if not (0.0 < self.noise_multiplier < math.inf):
            raise PrivacyError(
                f"PrivacyReport.noise_multiplier must be finite and > 0 for a DP run, got {self.noise_multiplier!r}."
            )
        if self.sample_rate <= 0.0:
            raise PrivacyError(f"PrivacyReport.sample_rate must be > 0 for a DP run, got {self.sample_rate!r}.")
        if self.max_grad_norm is None or not (0.0 < self.max_grad_norm < math.inf):
            raise PrivacyError(
                f"PrivacyReport.max_grad_norm must be finite and > 0 for a DP run (the per-example "
                f"clipping norm), got {self.max_grad_norm!r}."
            )

    # -- (de)serialisation ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON-able dict (non-finite floats as the strings ``"inf"``/``"-inf"``)."""
        self.validate()
        out: dict[str, Any] = {"format": REPORT_FORMAT, "version": REPORT_VERSION}
        for f in dataclasses.fields(self):
            # validate() has ruled out NaN and made every list a list of str, so json_value's rule
            # is exactly the format's: +/-inf -> "inf"/"-inf", lists copied, all else unchanged.
            out[f.name] = json_value(getattr(self, f.name))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PrivacyReport:
        """Inverse of :meth:`to_dict`; raises :class:`PrivacyError` on anything malformed."""
        if not isinstance(data, Mapping):
            raise PrivacyError(f"a privacy report must be a JSON object, got {type(data).__name__}.")
        if data.get("format") != REPORT_FORMAT:
            raise PrivacyError(
                f"not a trustgen privacy report: 'format' is {data.get('format')!r}, expected "
                f"{REPORT_FORMAT!r}."
            )
        if data.get("version") != REPORT_VERSION:
            raise PrivacyError(
                f"privacy report version {data.get('version')!r} is not supported (expected "
                f"{REPORT_VERSION}); it was written by another trustgen version."
            )
        names = {f.name for f in dataclasses.fields(cls)}
        keys = set(data) - {"format", "version"}
        unknown = keys - names
        if unknown:
            raise PrivacyError(f"privacy report has unknown fields {sorted(unknown)}; the file is not valid.")
        missing = names - keys - set(_LATER_FIELDS)
        if missing:
            raise PrivacyError(f"privacy report is missing fields {sorted(missing)}; the file is incomplete.")
        kwargs: dict[str, Any] = {}
        for name in names & keys:
            value = data[name]
            if name in _FLOAT_FIELDS and isinstance(value, str):
                if value not in ("inf", "-inf"):
                    raise PrivacyError(
                        f"privacy report field {name!r} = {value!r}: numbers must be JSON numbers, or "
                        f"the strings 'inf' / '-inf'."
                    )
                value = math.inf if value == "inf" else -math.inf
            kwargs[name] = value
        return cls(**kwargs)

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write the report to ``path`` atomically (temp file in the same directory + ``os.replace``).

        Example:
            >>> import tempfile, pathlib
            >>> d = pathlib.Path(tempfile.mkdtemp())
            >>> r = PrivacyReport.non_private()
            >>> PrivacyReport.from_json(r.to_json(d / "privacy.json")) == r
            True
        """
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"  # fail before touching disk
        target = Path(path)
        directory = target.parent
        if not directory.is_dir():  # atomic_write_text would create it; a report goes beside its run
            raise PrivacyError(
                f"cannot write the privacy report to {target}: directory {directory} does not exist. "
                f"Create it first."
            )
        atomic_write_text(target, text)
        return target

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> PrivacyReport:
        """Read and validate a report written by :meth:`to_json`.

        Raises:
            PrivacyError: If the file is missing, not JSON, or not a valid report.
        """
        p = Path(path)
        data = read_json(p, "privacy report", PrivacyError,
                         hint="re-create it from the run (was the run finished?)")
        try:
            return cls.from_dict(data)
        except TypeError as exc:  # pragma: no cover - from_dict checks fields first
            raise PrivacyError(f"privacy report {p} is malformed: {exc}") from exc

    # -- human-readable -------------------------------------------------------------------------

    def share_text(self, part: Literal["label", "marginal"]) -> str:
        """What the ``part`` histogram's share bought, in words (``"0.25 of the target"``). A share so large that its noise would fall
        below the plan's floor (``HISTOGRAM_SIGMA_MIN``) spends less than stated; saying "0.9 of
        the target" there would overstate what the release cost."""
        share, epsilon_alone = getattr(self, f"{part}_budget"), getattr(self, f"{part}_epsilon")
        if self.target_epsilon is not None and epsilon_alone < 0.99 * share * self.target_epsilon:
            return (f"{epsilon_alone / self.target_epsilon:.3g} of the target, below the stated share {share:.3g}: "
                    "its noise is held at the least a histogram gets")
        return f"{share:.3g} of the target"

    def summary(self) -> str:
        """Multi-line text: the guarantee, what it covers, and what it does not.

        Example:
            >>> print(PrivacyReport.non_private().summary().splitlines()[0])
            NO DIFFERENTIAL PRIVACY: this model was trained without DP (epsilon = inf).
        """
        lines: list[str] = []
        if not math.isfinite(self.epsilon):
            lines += [
                "NO DIFFERENTIAL PRIVACY: this model was trained without DP (epsilon = inf).",
                "There is no formal limit on what the model, its samples or its outputs reveal about",
                "any training record. Do not describe or share it as privacy-preserving.",
                f"Training: {self.steps} steps, {self.epochs:g} epochs.",
            ]
            return "\n".join(lines + self._caveat_lines())

        total = self.total_epsilon
        lines.append(f"Privacy report: {self.mechanism}, accountant '{self.accountant}'")
        if math.isfinite(total):
            lines.append(
                f"Guarantee: ({total:.4g}, {self.delta:.3g})-differential privacy, privacy unit: "
                f"{self.privacy_unit}."
            )
        else:
            lines.append(
                "Guarantee: NONE overall: preprocessing was not private (preprocessing_epsilon = inf), "
                f"although training alone spent epsilon {self.epsilon:.4g} at delta {self.delta:.3g}."
            )
        if 0 < self.preprocessing_epsilon < math.inf:  # the NONE line above already explains inf
            lines.append(
                f"  = training epsilon {self.epsilon:.4g} + preprocessing epsilon "
                f"{self.preprocessing_epsilon:.4g} (pure-DP preprocessing such as a DP schema; basic "
                "composition; delta is training's)."
            )
        if self.label_noise_multiplier > 0:
            lines.append(
                f"Label frequencies: a Gaussian histogram of the class counts (noise multiplier "
                f"{self.label_noise_multiplier:.4g}) spends epsilon {self.label_epsilon:.4g} alone "
                f"({self.share_text('label')}); the training epsilon {self.epsilon:.4g} is the "
                f"{self.accountant.upper()} composition of it with the DP-SGD steps (not a sum).")
        if self.marginal_noise_multiplier > 0:
            lines.append(
                f"Column marginals: a Gaussian histogram of every feature column's bins"
                + (f" and of the cells of {self.marginal_pairs} pairs of columns" if self.marginal_pairs else "")
                + f" (noise multiplier "
                f"{self.marginal_noise_multiplier:.4g}) spends epsilon {self.marginal_epsilon:.4g} alone "
                f"({self.share_text('marginal')}), composed in the same accountant; sampling corrects "
                "the samples towards it (post-processing).")
        lines.append(
            f"Training: {self.steps} steps of DP-SGD, sample rate {self.sample_rate:g} "
            f"({self.sampling_scheme} sampling), noise multiplier {self.noise_multiplier:.4g}, "
            f"clipping norm {self.max_grad_norm:g}, {self.epochs:g} epochs."
        )
        if self.target_epsilon is not None:
            status = "within" if self.epsilon <= self.target_epsilon else "EXCEEDS"
            lines.append(f"Target epsilon {self.target_epsilon:g}: training epsilon is {status} the target.")
        delta_note = "probability the guarantee fails outright"
        lines.append(f"Delta {self.delta:.3g} is the {delta_note}; it should be far below 1/(number of records).")
        lines.append("Covers:")
        mods = ", ".join(self.private_modules) if self.private_modules else "the trained modules"
        lines += [
            f"  - the parameters of {mods}, and anything computed from them alone (e.g. samples drawn",
            "    from the model): an adversary seeing them learns little more about whether any one",
            f"    record ({self.privacy_unit}) was in the training data.",
        ]
        lines += [
            "Does NOT cover:",
            "  - metrics, plots, logs or evaluations computed on the private data (they are released",
            "    outside the mechanism);",
            "  - schemas, category lists, value ranges or normalisation derived from the private data,",
            "    unless their cost is in preprocessing_epsilon;",
            "  - modules not listed as private, and any non-private pretraining data;",
            "  - people with several records: the guarantee is per record; for k records of one",
            "    person it degrades (group privacy, roughly k * epsilon);",
            "  - empirical audits: they give a lower bound on epsilon, never a proof of privacy.",
        ]
        if self.sampling_scheme != "poisson":
            lines.append(
                "WARNING: batches were formed by shuffling, but the accountant assumes Poisson sampling; "
                "the stated epsilon is not a proven guarantee for this run."
            )
        return "\n".join(lines + self._caveat_lines())

    def _caveat_lines(self) -> list[str]:
        return ["Caveats:"] + [f"  - {c}" for c in self.caveats] if self.caveats else []


NOISE_SOURCE_CAVEAT = (
    "DP noise and Poisson batch membership: a ChaCha20 keystream (OpenSSL, via the cryptography package) "
    "under a 256-bit key from the operating system's entropy, addressed by (purpose, step), so no draw "
    "depends on earlier batch sizes; Gaussians by Box-Muller on 53-bit uniforms, rounded to float32 (values "
    "beyond ~8.6 sigma are not represented, as in any floating-point DP-SGD). The model's own training "
    "noise is reseeded from the same source at every step. The key is kept only in memory and in the "
    "owner-only resume checkpoint, which is deleted when training completes.")


_CLIPPING_NAMES = {"bookkeeping": "trustgen book-keeping (per-example norms from one backward pass)",
                   "ghost": "Opacus ghost mode", "hooks": "Opacus hooks mode"}


def dp_sgd_caveats(*, mode: str, max_grad_norm: float, fixed_secret_seed: bool) -> list[str]:
    """The caveats of every DP-SGD run: a caller-fixed secret seed, the clipping, the public n.

    Example:
        >>> dp_sgd_caveats(mode="ghost", max_grad_norm=1.0, fixed_secret_seed=False)[0]
        'Per-example clipping: Opacus ghost mode, C = 1.0.'
    """
    seed = [
        "The DP noise and sampling seed was fixed by the caller (secret_seed): the guarantee holds only "
        "while that seed stays secret. Use this for tests only."] if fixed_secret_seed else []
    return seed + [
        f"Per-example clipping: {_CLIPPING_NAMES.get(mode, mode)}, C = {max_grad_norm}.",
        NOISE_SOURCE_CAVEAT,
        "The sample rate q = batch_size / n uses the number of records n, treated as public "
        "(standard in DP-SGD; under add/remove adjacency n itself is not protected).",
    ]


__all__ = ["NON_PRIVATE_MECHANISM", "PrivacyReport", "REPORT_FORMAT", "REPORT_VERSION", "SamplingScheme",
           "dp_sgd_caveats"]
