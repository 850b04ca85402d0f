"""One section of the evaluation report: its metrics, what was skipped and why, and its table rows.

Every section function of the report (``report_fidelity``, ``report_utility``, ...) returns a
:class:`Section`; :func:`trustgen.evaluation.report.evaluate` writes ``section.to_dict()`` under
the section's key and joins the sections' :attr:`Section.rows` into the report's metric table.

Example:
    >>> s = Section("privacy attacks", "synthetic samples vs real training data")
    >>> s.try_metric("dcr", lambda: 0.5)
    0.5
    >>> s.finish().to_dict()["status"]
    'ok'
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from trustgen.errors import TrustgenError
from trustgen.evaluation.labels import PRIVATE_NOTICE

NO_RECORDS_NOTICE = "does not read the private records"


@dataclass
class Section:
    """A report section as it is being computed, then written.

    Args:
        title: the section's name in the metric table (e.g. ``"privacy attacks"``).
        data: what the section's metrics were computed on, in words.
        private_data_used: whether the section reads the real (private) records.
        tested_on_training_data: whether its models were tested on rows the generator saw.

    Attributes:
        notice: :data:`~trustgen.evaluation.labels.PRIVATE_NOTICE` for a section that reads the
            private records; otherwise that it does not.
        status: ``"ok"``, ``"partial"`` (some metrics skipped) or ``"skipped"`` (all of them).
        metrics: the section's results (written as ``metrics``).
        skipped: ``{metric: reason}`` for every metric that was not computed.
        notes: notes shown with the section.
        seconds: time the section took.
        extra: section-specific keys, written after the common ones (e.g. ``mia_setup``).
        rows: the section's lines of the report's metric table (not written in the section).
        report_notes: notes for the report as a whole (not written in the section).
        figure_data: what the section's figures are drawn from (e.g. per-row distances, an ROC
            curve), kept in memory only: never written to ``report.json`` (per-record values of
            the private rows must not leave the figures that summarise them).
    """

    title: str
    data: str
    private_data_used: bool = True
    tested_on_training_data: bool = False
    notice: str = ""
    status: Literal["ok", "partial", "skipped"] = "ok"
    metrics: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    report_notes: list[str] = field(default_factory=list)
    figure_data: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    started: float = field(default_factory=time.time, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.notice:
            self.notice = PRIVATE_NOTICE if self.private_data_used else NO_RECORDS_NOTICE

    def try_metric(self, name: str, fn: Callable[[], Any]) -> Any:
        """Run one metric; a TrustgenError (e.g. a single class in the samples) marks it skipped.

        Returns the metric's value, or None when it was skipped.
        """
        try:
            return fn()
        except TrustgenError as e:
            self.skipped[name] = f"failed: {e}"
            return None

    def add_row(self, metric: str, value: Any, direction: str, value_range: str, data: str) -> None:
        """Add one headline number to the metric table shared by the JSON and the HTML."""
        self.rows.append({"section": self.title, "metric": metric, "value": value, "direction": direction,
                          "range": value_range, "data": data, "private_data_used": self.private_data_used})

    def finish(self) -> Section:
        """Record the time taken and set the status from what was skipped; returns ``self``."""
        self.seconds = round(time.time() - self.started, 2)
        if self.skipped:
            self.status = "partial" if self.metrics else "skipped"
        return self

    def to_dict(self) -> dict[str, Any]:
        """The section as written in ``report.json`` (common keys first, then :attr:`extra`)."""
        return {"private_data_used": self.private_data_used, "notice": self.notice, "data": self.data,
                "tested_on_training_data": self.tested_on_training_data, "status": self.status,
                "metrics": self.metrics, "skipped": self.skipped, "notes": self.notes, "seconds": self.seconds,
                **self.extra}
