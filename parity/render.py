"""Markdown and standalone HTML renderings of a parity report.

Both renderings come from one description of each job's sections (headings, paragraphs, tables), so the HTML
page shows everything the Markdown does. The HTML page adds inline SVG charts (which checks passed per job,
how many relations were value-checked and where values differ, row-count deltas, node-set differences), with
inline CSS, no scripts and no external resources, so it opens offline and can be attached to a ticket.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from dbt2prefect.escaping import markdown_cell, markdown_text
from parity.model import (
    NEVER_ACCEPTED,
    Check,
    Finding,
    JobParity,
    ParityReport,
    Reason,
    RowCountStatus,
    Severity,
    ValueStatus,
)

MAX_ROWS = 50


@dataclass(frozen=True)
class _Heading:
    text: str


@dataclass(frozen=True)
class _Para:
    text: str


@dataclass(frozen=True)
class _Table:
    headers: list[str]
    rows: Sequence[Sequence[object]]


_Block = _Heading | _Para | _Table


def _value_counts(job: JobParity) -> Counter[str]:
    return Counter(row.status.value for row in job.value_checks)


def _queries(counts: dict[str, int]) -> str:
    return ", ".join(f"{side} {n}" for side, n in counts.items()) or "none"


def job_blocks(job: JobParity) -> list[_Block]:
    """The sections of one job's report, in order; rendered as Markdown and as HTML."""
    blocks: list[_Block] = [
        _Para(
            f"Baseline: {job.baseline.system} run {job.baseline.run_id}"
            + (f" step {job.baseline.step}" if job.baseline.step is not None else "")
            + f" (target {job.baseline.target or '?'}); candidate: {job.candidate.system} run {job.candidate.run_id} "
            f"(target {job.candidate.target or '?'})."
        )
    ]
    values = _value_counts(job)
    schema_source = "catalog or information_schema" if job.schema_relations_compared else "not compared"
    blocks.append(
        _Para(
            f"Nodes executed on both sides: {job.nodes_matched}; same status: {job.statuses_matched}; "
            f"relations counted: {len(job.row_counts)}; relations value-checked: {len(job.value_checks)} "
            f"({values['equal']} equal, {values['different']} differ, {values['skipped']} skipped); "
            f"schema compared for {job.schema_relations_compared} relations ({schema_source}); warehouse queries: "
            f"{_queries(job.queries_issued)}; drill-down queries: {_queries(job.drill_down_queries)}."
        )
    )
    gating = [f for f in job.findings if f.severity is not Severity.INFO]
    if gating:
        blocks += [
            _Heading("Findings"),
            _Table(
                ["severity", "check", "reason", "subject", "message", "what to do"],
                [[f.severity.value, f.check.value, f.reason, f.subject, f.message, what_to_do(f)] for f in gating],
            ),
        ]
    blocks += [
        _Heading("Node counts"),
        _Table(
            ["resource type", "baseline", "candidate", "delta", "disabled (baseline/candidate)"],
            [
                [
                    r.resource_type,
                    r.baseline,
                    r.candidate,
                    f"{r.delta:+d}",
                    f"{r.baseline_disabled}/{r.candidate_disabled}",
                ]
                for r in job.node_counts
            ],
        ),
    ]
    if job.node_sets:
        blocks += [
            _Heading("Node-set differences"),
            _Table(
                ["node", "type", "difference", "compared", "reason"],
                [[r.unique_id, r.resource_type, r.difference, r.compared, r.reason] for r in job.node_sets],
            ),
        ]
    if job.statuses:
        blocks += [
            _Heading("Status differences"),
            _Table(
                ["node", "baseline", "candidate", "reason"],
                [[r.unique_id, r.baseline_status, r.candidate_status, r.reason] for r in job.statuses],
            ),
        ]
    off = [r for r in job.row_counts if r.status is not RowCountStatus.EQUAL]
    blocks.append(_Heading(f"Row counts ({len(job.row_counts) - len(off)} of {len(job.row_counts)} equal)"))
    if job.row_counts:
        # Every relation's counts, differing ones first: a reviewer sees the numbers, not only how many match.
        ordered = off + [r for r in job.row_counts if r.status is RowCountStatus.EQUAL]
        blocks.append(
            _Table(
                ["node", "baseline", "candidate", "delta", "status", "tolerance"],
                [
                    [r.unique_id, r.baseline_rows, r.candidate_rows, r.delta, r.status.value, r.tolerance_source]
                    for r in ordered
                ],
            )
        )
    blocks += _value_blocks(job)
    blocks += _noise_blocks(job)
    if job.schema_diffs:
        blocks += [
            _Heading("Schema differences"),
            _Table(
                ["node", "column", "baseline", "candidate", "status"],
                [[r.unique_id, r.column, r.baseline_type, r.candidate_type, r.status] for r in job.schema_diffs],
            ),
        ]
    info = [f for f in job.findings if f.severity is Severity.INFO]
    if info:
        blocks += [
            _Heading("Notes (informational, never gate)"),
            _Table(
                ["check", "reason", "subject", "message"],
                [[f.check.value, f.reason, f.subject, f.message] for f in info],
            ),
        ]
    if job.timing_summary is not None:
        blocks += _timing_blocks(job)
    return blocks


def _timing_blocks(job: JobParity) -> list[_Block]:
    t = job.timing_summary
    assert t is not None
    ratio = "n/a (the baseline recorded no time)" if t.ratio is None else f"{t.ratio}"
    meaning = (
        ""
        if t.ratio is None
        else f": the candidate took {t.ratio:.2f} times as long"
        + (" (slower)" if t.ratio > 1 else " (faster)" if t.ratio < 1 else "")
    )
    blocks: list[_Block] = [
        _Para(
            f"Timing (informational unless gated): baseline {t.baseline_seconds:.1f} s, candidate "
            f"{t.candidate_seconds:.1f} s, ratio {ratio}{meaning}. The ratio is candidate / baseline of the compared "
            "dbt step's elapsed time (run_results.json), over "
            f"{t.nodes_compared} nodes run on both sides; it reflects each side's warehouse size, threads, queueing "
            "and cold caches as much as the orchestrator (dbt Cloud's time excludes its own queue and clone). "
            "It fails parity only with [parity.timings] gate = true, above max_total_ratio."
        )
    ]
    slowest = sorted(job.timings, key=lambda r: r.candidate_seconds - r.baseline_seconds, reverse=True)[:5]
    slowest = [r for r in slowest if r.candidate_seconds > r.baseline_seconds]
    if slowest:
        blocks.append(
            _Table(
                ["node (largest added time)", "baseline s", "candidate s", "ratio"],
                [[r.unique_id, r.baseline_seconds, r.candidate_seconds, r.ratio] for r in slowest],
            )
        )
    return blocks


_FIXES = {
    Reason.VALUES_DIFFER.value: "find the cause in the differing columns below; a column that differs between two "
    "runs of the same code (a run timestamp) is excluded under [parity.values.exclude_by_model]",
    Reason.ROW_COUNT_DIFFERS.value: "compare the model's inputs and filters on both sides; an incremental lookback "
    "is tolerated under [parity.row_counts.tags.<tag>]",
    Reason.SLOWER_THAN_BASELINE.value: "find the slow nodes below (threads, warehouse size); or raise "
    "[parity.timings] max_total_ratio",
}


def what_to_do(finding: Finding) -> str:
    """The fix of a gating finding and, where a person may accept it, the exact `[parity]` line that does."""
    fix = finding.explanation or _FIXES.get(finding.reason, "")
    if finding.severity is not Severity.ERROR or finding.reason in NEVER_ACCEPTED:
        return fix
    if finding.reason == Reason.SLOWER_THAN_BASELINE.value:
        return fix
    accept = f'accept after review: [parity] accepted = ["{finding.reason}:{finding.subject}"]'
    return f"{fix}; or {accept}" if fix else accept


def _value_blocks(job: JobParity) -> list[_Block]:
    values = _value_counts(job)
    blocks: list[_Block] = [
        _Heading(
            f"Values ({values['equal']} of {len(job.value_checks)} equal, {values['different']} differ, "
            f"{values['skipped']} skipped)"
        )
    ]
    off = [r for r in job.value_checks if r.status is not ValueStatus.EQUAL]
    if off:
        blocks.append(
            _Table(
                ["node", "materialized", "status", "reason", "differing columns", "key", "note"],
                [
                    [
                        r.unique_id,
                        r.materialized,
                        r.status.value,
                        r.reason,
                        ", ".join(r.differing_columns),
                        ", ".join(r.key) + (f" ({r.key_source})" if r.key_source else ""),
                        r.note,
                    ]
                    for r in off
                ],
            )
        )
    columns = [
        [
            r.unique_id,
            d.column,
            f"{d.unequal_rows}" + ("" if d.complete else " or more"),
            d.max_abs_diff,
            r.rows_changed,
            f"{r.rows_only_in_baseline}/{r.rows_only_in_candidate}",
        ]
        for r in job.value_checks
        for d in r.column_diffs
    ]
    if columns:
        blocks += [
            _Heading("Differing columns (keys whose value differs)"),
            _Table(
                ["node", "column", "unequal rows", "largest difference", "changed keys", "keys only in b/c"], columns
            ),
        ]
    samples = [
        [
            r.unique_id,
            ", ".join(f"{k}={v}" for k, v in s.key.items()),
            s.kind,
            column,
            s.baseline.get(column),
            s.candidate.get(column),
        ]
        for r in job.value_checks
        for s in r.samples
        for column in (sorted(set(s.baseline) | set(s.candidate)) or [""])
    ]
    if samples:
        blocks += [
            _Heading("Value samples (differing keys)"),
            _Table(["node", "key", "kind", "column", "baseline", "candidate"], samples),
        ]
    tolerances = [
        [r.unique_id, ", ".join(r.excluded_columns), ", ".join(r.float_columns), r.float_decimals]
        for r in job.value_checks
        if r.excluded_columns or r.float_columns
    ]
    if tolerances:
        blocks += [
            _Heading("Value exclusions and float precision"),
            _Table(["node", "excluded columns (source)", "float columns", "decimal places"], tolerances),
        ]
    return blocks


def _noise_blocks(job: JobParity) -> list[_Block]:
    """Calibration (an A/A pair): what differs between two runs of the same code, why, and the settings lines."""
    if job.calibration is None:
        return []
    calibration = job.calibration
    blocks: list[_Block] = [
        _Heading(f"Build noise ({len(calibration.entries)} relations differ between two runs of the same code)"),
        _Para(
            f"Runs {calibration.first_run} and {calibration.second_run} built the same code. Their differences are "
            "nondeterministic, not migration faults. To leave them out of later comparisons, add each line under "
            "its table in the tenant's parity settings (a real change to other columns of these relations still "
            "fails); better, make the SQL deterministic (a unique ORDER BY, no clock or random value in compared "
            "columns)."
        ),
    ]
    if calibration.entries:
        blocks.append(
            _Table(
                ["node", "kind", "columns", "evidence", "SQL causing it", "table", "line"],
                [
                    [e.unique_id, e.kind, ", ".join(e.columns), e.evidence, "; ".join(e.sql), e.section, e.setting]
                    for e in calibration.entries
                ],
            )
        )
    return blocks


def _summary_table(report: ParityReport) -> _Table:
    return _Table(
        [
            "job", "name", "verdict", "errors", "node-set diffs", "status diffs", "row-count rows off",
            "relations value-checked", "value differences", "time ratio",
        ],
        [
            [
                j.job_id,
                j.job_name,
                j.verdict.value,
                len(j.errors()),
                len(j.node_sets),
                len(j.statuses),
                sum(1 for r in j.row_counts if r.status is not RowCountStatus.EQUAL),
                len(j.value_checks),
                _value_counts(j)["different"],
                j.timing_summary.ratio if j.timing_summary else None,
            ]
            for j in report.jobs
        ],
    )  # fmt: skip


# -- Markdown --------------------------------------------------------------------------------


# Text from dbt Cloud or dbt (job names, messages) goes through the toolkit's one Markdown escape.
_md_text = markdown_text
_md_cell = markdown_cell


def _md_table(headers: list[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in rows[:MAX_ROWS]]
    if len(rows) > MAX_ROWS:
        lines.append(f"\n… {len(rows) - MAX_ROWS} more rows in the JSON report.")
    return lines


def _md_blocks(blocks: list[_Block]) -> list[str]:
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, _Heading):
            lines += ["", f"### {_md_text(block.text)}"]
        elif isinstance(block, _Para):
            lines += ["", _md_text(block.text)]
        else:
            lines += _md_table(block.headers, block.rows)
    return lines


def job_markdown(job: JobParity) -> str:
    """Markdown section of one job: verdict, findings, node counts, differences, row counts, values, timings."""
    lines = [f"## Job {job.job_id} {_md_text(job.job_name)}: **{job.verdict.value}**", *_md_blocks(job_blocks(job))]
    return "\n".join(lines) + "\n"


def report_markdown(report: ParityReport) -> str:
    """The whole report as Markdown (for Prefect artifacts, PR comments, the CLI's --markdown)."""
    summary = _summary_table(report)
    lines = [
        f"# Parity {_md_text(report.tenant)}: **{report.verdict.value}**",
        "",
        f"Generated {report.created_at.isoformat(timespec='seconds')}.",
        "",
        *_md_table(summary.headers, summary.rows),
        "",
    ]
    return "\n".join(lines) + "\n" + "\n".join(job_markdown(job) for job in report.jobs)


# -- HTML ------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;color:#1d2433;max-width:1200px}
h1 .PASS,h2 .PASS{color:#176f2c} h1 .FAIL,h2 .FAIL{color:#b3261e}
table{border-collapse:collapse;margin:.5rem 0 1.2rem;width:100%} th,td{border:1px solid #d7dbe3;padding:4px 6px;
text-align:left;vertical-align:top;font-size:13px} th{background:#f3f5f9} td.num{text-align:right}
.error{color:#b3261e;font-weight:600} .explained{color:#8a5a00} .info{color:#55607a}
svg text{font:11px system-ui,sans-serif} .muted{color:#55607a} svg{display:block;margin:.5rem 0 1rem}
"""

_PASS, _FAIL, _EXPLAINED, _NONE = "#2e8540", "#b3261e", "#d9a400", "#c9ced8"


def _table(headers: list[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for row in rows[:MAX_ROWS]:
        cells = []
        for cell in row:
            css = ' class="num"' if isinstance(cell, int | float) else ""
            if isinstance(cell, str) and cell in ("error", "explained", "info"):
                css = f' class="{cell}"'
            cells.append(f"<td{css}>{escape('' if cell is None else str(cell))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = f'<p class="muted">{len(rows) - MAX_ROWS} more rows in the JSON report.</p>' if len(rows) > MAX_ROWS else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"


def _html_blocks(blocks: list[_Block]) -> str:
    parts = []
    for block in blocks:
        if isinstance(block, _Heading):
            parts.append(f"<h3>{escape(block.text)}</h3>")
        elif isinstance(block, _Para):
            parts.append(f"<p>{escape(block.text)}</p>")
        else:
            parts.append(_table(block.headers, block.rows))
    return "".join(parts)


def _svg(title: str, width: int, height: int, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{escape(title)}</title>'
        f'<text x="0" y="14" font-weight="600">{escape(title)}</text>' + "".join(body) + "</svg>"
    )


def _bar_chart(title: str, items: list[tuple[str, float, str]], unit: str) -> str:
    """Horizontal bars centred on zero; items are (label, value, colour)."""
    if not items:
        return ""
    width, label_w, row_h = 900, 330, 18
    height = 30 + row_h * len(items)
    span = max(abs(value) for _, value, _ in items) or 1.0
    half = (width - label_w - 20) / 2
    zero = label_w + half
    parts = [f'<line x1="{zero}" y1="22" x2="{zero}" y2="{height}" stroke="#99a" />']
    for index, (label, value, colour) in enumerate(items):
        y = 24 + index * row_h
        length = abs(value) / span * half
        x = zero if value >= 0 else zero - length
        short = label if len(label) <= 48 else "…" + label[-47:]
        parts.append(f'<text x="0" y="{y + 12}">{escape(short)}</text>')
        parts.append(
            f'<rect x="{x:.1f}" y="{y + 2}" width="{max(length, 1):.1f}" height="{row_h - 5}" fill="{colour}">'
            f"<title>{escape(label)}: {value:+g}{unit}</title></rect>"
        )
        text_x = zero + length + 4 if value >= 0 else zero - length - 4
        anchor = "start" if value >= 0 else "end"
        parts.append(f'<text x="{text_x:.1f}" y="{y + 12}" text-anchor="{anchor}">{value:+g}{unit}</text>')
    return _svg(title, width, height, parts)


def _check_state(job: JobParity, check: Check) -> tuple[str, str]:
    severities = {f.severity for f in job.findings if f.check is check}
    if Severity.ERROR in severities:
        return "failed", _FAIL
    if Severity.EXPLAINED in severities:
        return "explained", _EXPLAINED
    ran = {
        Check.ROW_COUNTS: bool(job.row_counts),
        Check.VALUES: bool(job.value_checks),
        Check.SCHEMA: job.schema_relations_compared > 0 or bool(job.schema_diffs),
        Check.TIMINGS: job.timing_summary is not None,
    }.get(check, True)
    return ("passed", _PASS) if ran else ("not run", _NONE)


def checks_svg(report: ParityReport) -> str:
    """Per job, one cell per check: passed, explained, failed or not run."""
    checks = list(Check)
    cell_w, label_w, row_h = 96, 220, 22
    width, height = label_w + cell_w * len(checks), 48 + row_h * len(report.jobs)
    parts = [
        f'<text x="{label_w + i * cell_w + cell_w / 2}" y="38" text-anchor="middle">{escape(c.value)}</text>'
        for i, c in enumerate(checks)
    ]
    for row, job in enumerate(report.jobs):
        y = 44 + row * row_h
        parts.append(f'<text x="0" y="{y + 14}">{escape(f"{job.job_id} {job.job_name}"[:34])}</text>')
        for i, check in enumerate(checks):
            state, colour = _check_state(job, check)
            x = label_w + i * cell_w
            parts.append(
                f'<rect x="{x + 2}" y="{y}" width="{cell_w - 4}" height="{row_h - 4}" fill="{colour}">'
                f"<title>job {job.job_id} {escape(check.value)}: {state}</title></rect>"
                f'<text x="{x + cell_w / 2}" y="{y + 13}" text-anchor="middle" fill="#fff">{state}</text>'
            )
    return _svg("Checks per job", width, height, parts)


def values_svg(report: ParityReport) -> str:
    """Per job a stacked bar of value-checked relations (equal / differ / skipped)."""
    if not any(job.value_checks for job in report.jobs):
        return ""
    label_w, bar_w, row_h = 220, 600, 22
    most = max(len(job.value_checks) for job in report.jobs) or 1
    parts = []
    for row, job in enumerate(report.jobs):
        y = 26 + row * row_h
        parts.append(f'<text x="0" y="{y + 13}">{escape(f"{job.job_id} {job.job_name}"[:34])}</text>')
        x = float(label_w)
        counts = _value_counts(job)
        for status, colour in (("equal", _PASS), ("different", _FAIL), ("skipped", _NONE)):
            length = counts[status] / most * bar_w
            if counts[status]:
                parts.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{length:.1f}" height="{row_h - 6}" fill="{colour}">'
                    f"<title>job {job.job_id}: {counts[status]} {status}</title></rect>"
                )
            x += length
        parts.append(
            f'<text x="{x + 4:.1f}" y="{y + 13}">{counts["equal"]} equal, {counts["different"]} differ, '
            f"{counts['skipped']} skipped</text>"
        )
    return _svg("Relations value-checked per job", label_w + bar_w + 220, 30 + row_h * len(report.jobs), parts)


def report_svg(report: ParityReport, top: int = 25) -> str:
    """Inline SVG charts: checks per job, value checks per job, where values differ, row-count deltas, node sets."""
    differ: list[tuple[str, float, str]] = []
    for job in report.jobs:
        for row in job.value_checks:
            if row.status is ValueStatus.DIFFERENT:
                label = f"{job.job_id}: {row.unique_id} [{', '.join(row.differing_columns) or 'rows'}]"
                differ.append((label, float(len(row.differing_columns) or 1), _FAIL))
    deltas: list[tuple[str, float, str]] = []
    for job in report.jobs:
        for rc in job.row_counts:
            if rc.delta and rc.relative_delta is not None:
                colour = _FAIL if rc.status is RowCountStatus.DIFFERENT else _EXPLAINED
                deltas.append((f"{job.job_id}: {rc.unique_id}", round(rc.relative_delta * 100, 2), colour))
    deltas.sort(key=lambda item: -abs(item[1]))
    sets: list[tuple[str, float, str]] = []
    for job in report.jobs:
        counts = Counter((r.difference, r.reason) for r in job.node_sets)
        for (difference, reason), count in sorted(counts.items()):
            value = -count if difference == "missing" else count
            colour = "#8a5a00" if reason == "target_dependent_config" else _FAIL
            sets.append((f"{job.job_id}: {difference} ({reason})", float(value), colour))
    charts = checks_svg(report) + values_svg(report)
    charts += _bar_chart("Where values differ (differing columns per relation)", differ[:top], "")
    charts += _bar_chart("Row-count deltas, candidate vs baseline (%)", deltas[:top], "%")
    charts += _bar_chart("Node-set differences (missing < 0 < extra)", sets, "")
    if not (differ or deltas or sets):
        charts += '<p class="muted">No value differences, row-count deltas or node-set differences to chart.</p>'
    return charts


def report_html(report: ParityReport) -> str:
    """A standalone HTML page (inline CSS and SVG, no scripts, no external resources)."""
    v = report.verdict.value
    summary = _summary_table(report)
    body = [
        f'<h1>Parity {escape(report.tenant)}: <span class="{v}">{v}</span></h1>',
        f'<p class="muted">Generated {escape(report.created_at.isoformat(timespec="seconds"))}.</p>',
        _table(summary.headers, summary.rows),
        report_svg(report),
    ]
    for job in report.jobs:
        jv = job.verdict.value
        body.append(f'<h2>Job {job.job_id} {escape(job.job_name)}: <span class="{jv}">{jv}</span></h2>')
        body.append(_html_blocks(job_blocks(job)))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Parity {escape(report.tenant)}: {v}</title><style>{_CSS}</style></head><body>"
        + "".join(body)
        + "</body></html>\n"
    )
