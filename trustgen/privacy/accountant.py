"""The state of DP-SGD accounting: the resumable :class:`Accountant` of one training run.

The maths (epsilon of a history, argument checks) is in :mod:`trustgen.privacy.accounting`; this
module only keeps the history, merges consecutive steps with the same settings, and saves and
restores it (``state_dict`` / ``load_state_dict``) so that a resumed run continues the same count.

Example:
    >>> acc = Accountant("rdp")
    >>> acc.step(1.0, 0.01, n=10_000)
    >>> round(acc.epsilon(1e-5), 3)
    6.713
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from trustgen.errors import PrivacyError
from trustgen.privacy.accounting import (
    AccountantKind,
    Segment,
    check_accountant,
    check_segment,
    check_target_epsilon,
    epsilon_of_history,
)

#: Format version of :meth:`Accountant.state_dict`.
STATE_VERSION: int = 1


class Accountant:
    """History of DP-SGD steps of one training run, and the epsilon they spent.

    The history is a list of ``(noise_multiplier, sample_rate, steps)`` segments; consecutive steps
    with the same settings merge into one segment. The state is plain JSON-able Python (no numpy),
    so it can live inside a checkpoint loaded with ``torch.load(weights_only=True)``. Loading a state
    *replaces* the history: resuming continues the same count, never resets it, never double counts.

    Args:
        kind: ``"prv"`` (default) or ``"rdp"``.

    Example:
        >>> acc = Accountant("rdp")
        >>> acc.step(1.0, 0.01, n=5_000)
        >>> state = acc.state_dict()
        >>> resumed = Accountant("rdp"); resumed.load_state_dict(state)
        >>> resumed.step(1.0, 0.01, n=5_000)
        >>> resumed.history
        [(1.0, 0.01, 10000)]
        >>> round(resumed.epsilon(1e-5), 3)
        6.713
    """

    def __init__(self, kind: AccountantKind = "prv") -> None:
        self.kind: str = check_accountant(kind)
        self._history: list[Segment] = []

    # -- state ------------------------------------------------------------------------------

    @property
    def history(self) -> list[Segment]:
        """A copy of the segments ``(noise_multiplier, sample_rate, steps)``, oldest first."""
        return list(self._history)

    @property
    def steps(self) -> int:
        """Total number of noisy steps recorded."""
        return sum(seg[2] for seg in self._history)

    def __len__(self) -> int:
        return self.steps

    def __repr__(self) -> str:
        return f"Accountant(kind={self.kind!r}, steps={self.steps}, segments={len(self._history)})"

    def step(self, noise_multiplier: float, sample_rate: float, n: int = 1) -> None:
        """Record ``n`` noisy steps at ``noise_multiplier`` and ``sample_rate``.

        Args:
            noise_multiplier: sigma of the steps (> 0).
            sample_rate: Poisson sample rate of the steps (0 < q <= 1).
            n: Number of steps (>= 0).

        Example:
            >>> acc = Accountant(); acc.step(1.0, 0.01); acc.step(1.0, 0.01, n=9)
            >>> acc.history
            [(1.0, 0.01, 10)]
        """
        seg = _segment(noise_multiplier, sample_rate, n)
        if seg[2] == 0:
            return
        self._history = _append(self._history, seg)

    def epsilon(self, delta: float) -> float:
        """Epsilon spent so far at ``delta`` (0.0 before the first step).

        Example:
            >>> acc = Accountant("rdp"); acc.step(1.0, 0.01, n=10_000)
            >>> round(acc.epsilon(1e-5), 3)
            6.713
        """
        return epsilon_of_history(self._history, delta, self.kind)

    def would_exceed(
        self,
        target_epsilon: float,
        delta: float,
        extra_steps: int,
        noise_multiplier: float,
        sample_rate: float,
    ) -> bool:
        """Whether ``extra_steps`` more steps would push epsilon above ``target_epsilon``.

        A trainer calls this before a step (or an epoch) and stops instead of overspending.
        Results are cached, so repeated calls with the same history are cheap.

        Example:
            >>> acc = Accountant("rdp"); acc.step(1.0, 0.01, n=9_000)
            >>> acc.would_exceed(6.713, 1e-5, 1_000, 1.0, 0.01)
            False
            >>> acc.would_exceed(6.713, 1e-5, 1_100, 1.0, 0.01)
            True
        """
        target = check_target_epsilon(target_epsilon)
        seg = _segment(noise_multiplier, sample_rate, extra_steps)
        hist = _append(self._history, seg) if seg[2] > 0 else list(self._history)
        return epsilon_of_history(hist, delta, self.kind) > target

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state: ``{"version": 1, "kind": str, "history": [[sigma, q, steps], ...]}``.

        Only Python ``int``/``float``/``str``/``list``/``dict``: safe for JSON and for
        ``torch.load(weights_only=True)``.
        """
        return {
            "version": STATE_VERSION,
            "kind": self.kind,
            "history": [[float(s), float(q), int(n)] for s, q, n in self._history],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the history saved by :meth:`state_dict` (replacing, not adding to, the current one).

        Raises:
            PrivacyError: If the state is malformed or was made by an accountant of another kind.
        """
        if not isinstance(state, Mapping):
            raise PrivacyError(
                f"accountant state must be a dict from Accountant.state_dict(), got {type(state).__name__}."
            )
        missing = {"version", "kind", "history"} - set(state)
        if missing:
            raise PrivacyError(
                f"accountant state is missing {sorted(missing)}: it was not produced by "
                f"Accountant.state_dict() (or the checkpoint is damaged)."
            )
        if state["version"] != STATE_VERSION:
            raise PrivacyError(
                f"accountant state version {state['version']!r} is not supported (expected "
                f"{STATE_VERSION}); it was written by another trustgen version."
            )
        if state["kind"] != self.kind:
            raise PrivacyError(
                f"the checkpoint's accountant is {state['kind']!r} but this one is {self.kind!r}. "
                f"Mixing accountants changes the reported epsilon mid-run; create "
                f"Accountant({state['kind']!r}) to resume."
            )
        raw = state["history"]
        if not isinstance(raw, Sequence) or isinstance(raw, (str, bytes)):
            raise PrivacyError("accountant state 'history' must be a list of [sigma, q, steps] entries.")
        history: list[Segment] = []
        for i, entry in enumerate(raw):
            if not isinstance(entry, Sequence) or isinstance(entry, (str, bytes)) or len(entry) != 3:
                raise PrivacyError(
                    f"accountant state history[{i}] = {entry!r} is not a [sigma, q, steps] triple."
                )
            seg = _segment(*entry)
            if seg[2] > 0:
                history = _append(history, seg)
        self._history = history

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> Accountant:
        """Build an accountant from :meth:`state_dict` output (its kind is taken from the state)."""
        if not isinstance(state, Mapping) or "kind" not in state:
            raise PrivacyError("accountant state must be a dict from Accountant.state_dict() with a 'kind'.")
        acc = cls(state["kind"])
        acc.load_state_dict(state)
        return acc


def _segment(noise_multiplier: Any, sample_rate: Any, n: Any) -> Segment:
    return check_segment(noise_multiplier, sample_rate, n, "n")


def _append(history: list[Segment], seg: Segment) -> list[Segment]:
    out = list(history)
    if out and out[-1][0] == seg[0] and out[-1][1] == seg[1]:
        out[-1] = (seg[0], seg[1], out[-1][2] + seg[2])
    else:
        out.append(seg)
    return out


__all__ = ["Accountant", "STATE_VERSION"]
