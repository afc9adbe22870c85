"""Markdown and standalone HTML renderings of a parity report.

The HTML page has inline CSS and an inline SVG chart (row-count deltas and node-set differences per job),
no scripts and no external resources, so it opens offline and can be attached to a ticket.
"""

from __future__ import annotations

from collections import Counter
from html import escape

from parity.model import JobParity, ParityReport, RowCountStatus, Severity

MAX_ROWS = 50


def _md_text(value: object) -> str:
    """Text from dbt Cloud or dbt (job names, messages) as inert Markdown: HTML escaped, one line."""
    text = "" if value is None else str(value)
    return " ".join(escape(text, quote=False).splitlines())


def _md_cell(value: object) -> str:
    return _md_text(value).replace("|", "\\|")


def _md_table(headers: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in rows[:MAX_ROWS]]
    if len(rows) > MAX_ROWS:
        lines.append(f"\n… {len(rows) - MAX_ROWS} more rows in the JSON report.")
    return lines


def job_markdown(job: JobParity) -> str:
    """Markdown section of one job: verdict, findings, node counts, differences, row counts, timings."""
    lines = [f"## Job {job.job_id} {_md_text(job.job_name)}: **{job.verdict.value}**", ""]
    lines.append(
        f"Baseline: {job.baseline.system} run {job.baseline.run_id}"
        + (f" step {job.baseline.step}" if job.baseline.step is not None else "")
        + f" (target {job.baseline.target or '?'}); candidate: {job.candidate.system} run {job.candidate.run_id} "
        f"(target {job.candidate.target or '?'})."
    )
    lines.append(
        f"Nodes executed on both sides: {job.nodes_matched}; same status: {job.statuses_matched}; "
        f"relations counted: {len(job.row_counts)}; warehouse queries: "
        + (", ".join(f"{side} {n}" for side, n in job.queries_issued.items()) or "none")
        + "."
    )
    lines.append("")
    gating = [f for f in job.findings if f.severity is not Severity.INFO]
    if gating:
        lines.append("### Findings")
        lines += _md_table(
            ["severity", "check", "reason", "subject", "message", "explanation"],
            [[f.severity.value, f.check.value, f.reason, f.subject, f.message, f.explanation] for f in gating],
        )
        lines.append("")
    lines.append("### Node counts")
    lines += _md_table(
        ["resource type", "baseline", "candidate", "delta", "disabled (baseline/candidate)"],
        [
            [r.resource_type, r.baseline, r.candidate, f"{r.delta:+d}", f"{r.baseline_disabled}/{r.candidate_disabled}"]
            for r in job.node_counts
        ],
    )
    if job.node_sets:
        lines += ["", "### Node-set differences"]
        lines += _md_table(
            ["node", "type", "difference", "compared", "reason"],
            [[r.unique_id, r.resource_type, r.difference, r.compared, r.reason] for r in job.node_sets],
        )
    if job.statuses:
        lines += ["", "### Status differences"]
        lines += _md_table(
            ["node", "baseline", "candidate", "reason"],
            [[r.unique_id, r.baseline_status, r.candidate_status, r.reason] for r in job.statuses],
        )
    off = [r for r in job.row_counts if r.status is not RowCountStatus.EQUAL]
    lines += ["", f"### Row counts ({len(job.row_counts) - len(off)} of {len(job.row_counts)} equal)"]
    if off:
        lines += _md_table(
            ["node", "baseline", "candidate", "delta", "status", "tolerance"],
            [
                [r.unique_id, r.baseline_rows, r.candidate_rows, r.delta, r.status.value, r.tolerance_source]
                for r in off
            ],
        )
    if job.schema_diffs:
        lines += ["", "### Schema differences"]
        lines += _md_table(
            ["node", "column", "baseline", "candidate", "status"],
            [[r.unique_id, r.column, r.baseline_type, r.candidate_type, r.status] for r in job.schema_diffs],
        )
    if job.timing_summary is not None:
        t = job.timing_summary
        lines += [
            "",
            f"Timing (informational unless gated): baseline {t.baseline_seconds:.1f} s, candidate "
            f"{t.candidate_seconds:.1f} s, ratio {t.ratio if t.ratio is not None else 'n/a'}.",
        ]
    return "\n".join(lines) + "\n"


def report_markdown(report: ParityReport) -> str:
    """The whole report as Markdown (for Prefect artifacts, PR comments, the CLI's --markdown)."""
    lines = [
        f"# Parity {_md_text(report.tenant)}: **{report.verdict.value}**",
        "",
        f"Generated {report.created_at.isoformat(timespec='seconds')}.",
        "",
    ]
    lines += _md_table(
        ["job", "name", "verdict", "errors", "node-set diffs", "status diffs", "row-count rows off"],
        [
            [
                j.job_id,
                j.job_name,
                j.verdict.value,
                len(j.errors()),
                len(j.node_sets),
                len(j.statuses),
                sum(1 for r in j.row_counts if r.status is not RowCountStatus.EQUAL),
            ]
            for j in report.jobs
        ],
    )
    lines.append("")
    return "\n".join(lines) + "\n" + "\n".join(job_markdown(job) for job in report.jobs)


# -- HTML ------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;color:#1d2433;max-width:1200px}
h1 .PASS,h2 .PASS{color:#176f2c} h1 .FAIL,h2 .FAIL{color:#b3261e}
table{border-collapse:collapse;margin:.5rem 0 1.2rem;width:100%} th,td{border:1px solid #d7dbe3;padding:4px 6px;
text-align:left;vertical-align:top;font-size:13px} th{background:#f3f5f9} td.num{text-align:right}
.error{color:#b3261e;font-weight:600} .explained{color:#8a5a00} .info{color:#55607a}
svg text{font:11px system-ui,sans-serif} .muted{color:#55607a}
"""


def _table(headers: list[str], rows: list[list[object]]) -> str:
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


def _bar_chart(title: str, items: list[tuple[str, float, str]], unit: str) -> str:
    """Horizontal bars centred on zero; items are (label, value, colour)."""
    if not items:
        return ""
    width, label_w, row_h = 900, 330, 18
    height = 30 + row_h * len(items)
    span = max(abs(value) for _, value, _ in items) or 1.0
    half = (width - label_w - 20) / 2
    zero = label_w + half
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{escape(title)}</title>',
        f'<text x="0" y="14" font-weight="600">{escape(title)}</text>',
        f'<line x1="{zero}" y1="22" x2="{zero}" y2="{height}" stroke="#99a" />',
    ]
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
    parts.append("</svg>")
    return "".join(parts)


def report_svg(report: ParityReport, top: int = 25) -> str:
    """Inline SVG: the largest row-count deltas (in %) and node-set differences per job."""
    deltas: list[tuple[str, float, str]] = []
    for job in report.jobs:
        for row in job.row_counts:
            if row.delta and row.relative_delta is not None:
                colour = "#b3261e" if row.status is RowCountStatus.DIFFERENT else "#d9a400"
                deltas.append((f"{job.job_id}: {row.unique_id}", round(row.relative_delta * 100, 2), colour))
    deltas.sort(key=lambda item: -abs(item[1]))
    sets: list[tuple[str, float, str]] = []
    for job in report.jobs:
        counts = Counter((r.difference, r.reason) for r in job.node_sets)
        for (difference, reason), count in sorted(counts.items()):
            value = -count if difference == "missing" else count
            colour = "#8a5a00" if reason == "target_dependent_config" else "#b3261e"
            sets.append((f"{job.job_id}: {difference} ({reason})", float(value), colour))
    charts = _bar_chart("Row-count deltas, candidate vs baseline (%)", deltas[:top], "%")
    charts += _bar_chart("Node-set differences (missing < 0 < extra)", sets, "")
    return charts or '<p class="muted">No row-count deltas and no node-set differences to chart.</p>'


def report_html(report: ParityReport) -> str:
    """A standalone HTML page (inline CSS and SVG, no scripts, no external resources)."""
    v = report.verdict.value
    body = [
        f'<h1>Parity {escape(report.tenant)}: <span class="{v}">{v}</span></h1>',
        f'<p class="muted">Generated {escape(report.created_at.isoformat(timespec="seconds"))}.</p>',
        _table(
            ["job", "name", "verdict", "errors", "nodes matched", "node-set diffs", "status diffs", "time ratio"],
            [
                [
                    j.job_id,
                    j.job_name,
                    j.verdict.value,
                    len(j.errors()),
                    j.nodes_matched,
                    len(j.node_sets),
                    len(j.statuses),
                    j.timing_summary.ratio if j.timing_summary else None,
                ]
                for j in report.jobs
            ],
        ),
        report_svg(report),
    ]
    for job in report.jobs:
        jv = job.verdict.value
        body.append(f'<h2>Job {job.job_id} {escape(job.job_name)}: <span class="{jv}">{jv}</span></h2>')
        body.append(
            f'<p class="muted">Baseline {escape(job.baseline.system)} run {escape(job.baseline.run_id)} '
            f"(target {escape(job.baseline.target or '?')}), candidate {escape(job.candidate.system)} run "
            f"{escape(job.candidate.run_id)} (target {escape(job.candidate.target or '?')}).</p>"
        )
        if job.findings:
            body.append("<h3>Findings</h3>")
            body.append(
                _table(
                    ["severity", "check", "reason", "subject", "message", "explanation"],
                    [
                        [f.severity.value, f.check.value, f.reason, f.subject, f.message, f.explanation]
                        for f in job.findings
                    ],
                )
            )
        body.append("<h3>Node counts</h3>")
        body.append(
            _table(
                ["resource type", "baseline", "candidate", "delta", "disabled baseline", "disabled candidate"],
                [
                    [r.resource_type, r.baseline, r.candidate, r.delta, r.baseline_disabled, r.candidate_disabled]
                    for r in job.node_counts
                ],
            )
        )
        if job.row_counts:
            body.append("<h3>Row counts</h3>")
            body.append(
                _table(
                    ["node", "baseline", "candidate", "delta", "status", "tolerance"],
                    [
                        [r.unique_id, r.baseline_rows, r.candidate_rows, r.delta, r.status.value, r.tolerance_source]
                        for r in sorted(job.row_counts, key=lambda r: (r.status is RowCountStatus.EQUAL, r.unique_id))
                    ],
                )
            )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Parity {escape(report.tenant)}: {v}</title><style>{_CSS}</style></head><body>"
        + "".join(body)
        + "</body></html>\n"
    )
