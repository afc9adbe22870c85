"""Timings per node and in total as candidate/baseline ratios; informational unless the tenant gates on them."""

from __future__ import annotations

from parity.artifacts import RunResults
from parity.model import Check, Finding, Reason, Severity, TimingRow, TimingSummary
from parity.settings import ParitySettings


def _ratio(candidate: float, baseline: float) -> float | None:
    return round(candidate / baseline, 3) if baseline > 0 else None


def compare_timings(
    baseline: RunResults, candidate: RunResults, settings: ParitySettings
) -> tuple[TimingSummary, list[TimingRow], list[Finding]]:
    """Per-node execution_time ratios and the ratio of the runs' elapsed times."""
    base = {r.unique_id: r.execution_time for r in baseline.results}
    cand = {r.unique_id: r.execution_time for r in candidate.results}
    rows = [
        TimingRow(
            unique_id=uid, baseline_seconds=base[uid], candidate_seconds=cand[uid], ratio=_ratio(cand[uid], base[uid])
        )
        for uid in sorted(set(base) & set(cand))
    ]
    base_total = baseline.elapsed_time or sum(base.values())
    cand_total = candidate.elapsed_time or sum(cand.values())
    summary = TimingSummary(
        baseline_seconds=round(base_total, 3),
        candidate_seconds=round(cand_total, 3),
        ratio=_ratio(cand_total, base_total),
        nodes_compared=len(rows),
    )
    findings: list[Finding] = []
    limit = settings.timings.max_total_ratio
    slow = (
        summary.ratio is not None
        and summary.ratio > limit
        and max(base_total, cand_total) >= settings.timings.min_seconds
    )
    if slow:
        findings.append(
            Finding(
                check=Check.TIMINGS,
                reason=Reason.SLOWER_THAN_BASELINE.value,
                severity=Severity.ERROR if settings.timings.gate else Severity.INFO,
                subject="run",
                message=f"the candidate took {cand_total:.1f} s, {summary.ratio}x the baseline's {base_total:.1f} s "
                f"(limit {limit}x)",
                explanation=None
                if settings.timings.gate
                else "timings are informational (parity.timings.gate = false)",
            )
        )
    return summary, rows, findings
