"""The ``privacy_report`` section of the evaluation report: the run's DP guarantee.

It restates the run's :class:`~trustgen.privacy.report.PrivacyReport` (computed from the training
hyper-parameters by the accountant), so unlike every other section it reads no private records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trustgen.evaluation.report_section import Section

if TYPE_CHECKING:
    from trustgen.privacy.report import PrivacyReport


def privacy_guarantee_section(privacy: PrivacyReport | None) -> Section:
    """The run's epsilon, delta and privacy report; skipped when the run has none."""
    s = Section("privacy guarantee", "the run's DP accounting (training hyper-parameters), not the records",
                private_data_used=False)
    if privacy is None:
        s.skipped["privacy_report"] = "the run has no privacy.json"
        s.status = "skipped"
        return s
    s.metrics.update(is_private=privacy.is_private, epsilon=privacy.total_epsilon, delta=privacy.delta)
    s.extra["summary"] = privacy.summary()
    s.extra["report"] = privacy.to_dict()
    s.add_row("DP epsilon of the training run", privacy.total_epsilon, "lower is better (inf: no guarantee)",
              "[0, inf]", "training hyper-parameters")
    return s
