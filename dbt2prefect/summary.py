"""The run summary: counts by status, failures with their messages, slowest nodes, and a node table.

prefect-dbt's runner makes no artifact of its own; these are published by the flow.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from dbt2prefect.dbt_run import FAILED_STATUSES, WARN_STATUS, NodeResult, StepOutcome
from dbt2prefect.escaping import markdown_cell, markdown_text
from dbt2prefect.exception_task_runs import RECORDED_COST
from dbt2prefect.node_budget import NODE_COST
from dbt2prefect.state_task_runs import RUNNING_AFTER_SECONDS


@dataclass(frozen=True)
class RunSummary:
    """Aggregated outcome of a run's steps."""

    target: str
    success: bool
    steps: list[dict[str, Any]]
    counts: dict[str, int]
    failures: list[NodeResult]
    slowest: list[NodeResult]
    nodes: list[NodeResult]
    seconds: float
    attempts: list[dict[str, Any]] = field(default_factory=list)
    """The attempts that failed before the last one (a retry after a transient failure), first first."""
    left_out: list[str] = field(default_factory=list)
    """Nodes that ran without a task run and without forwarding their dbt log lines, to stay under `budget`."""
    budget: int | None = None
    """`[tenant.observability] logs_events_per_minute` of the run."""
    budget_setting: str | None = None
    """The setting that left nodes out, as `<name> = <value>` (None: `logs_events_per_minute = <budget>`)."""
    exception_task_runs: int | None = None
    """In the "exceptions" node view: how many failed, warned or slow nodes got a task run (None: another view)."""
    slow_node_seconds: float | None = None
    """In the "exceptions" node view: the time over which a node is slow."""
    state_task_runs: int | None = None
    """In the "states" node view: how many nodes got a task run recorded from dbt's events (None: another view)."""
    recording_failure: str | None = None
    """In the "exceptions" and "states" node views: the Prefect API's failure that stopped the recording of task
    runs."""
    node_view: str | None = None
    """`node view: <mode> (<why>)` (`dbt2prefect.node_view.NodeView.describe`; None: the lean mode)."""

    @property
    def warned(self) -> list[NodeResult]:
        """The node results that warned, in run order (a node that warned in two steps appears twice)."""
        return [node for node in self.nodes if node.status == WARN_STATUS]

    def to_record(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "success": self.success,
            "steps": self.steps,
            "counts": self.counts,
            "failures": [f"{node.unique_id}: {node.status}" for node in self.failures],
            "seconds": round(self.seconds, 3),
            "failed_attempts": self.attempts,
            "left_out_of_task_runs": len(self.left_out),
            "exception_task_runs": self.exception_task_runs,
            "node_view": self.node_view,
        }


STATE_LISTED_NODES = 5
"""At most this many warned nodes are named in a run's state message (the count covers all of them)."""


def warned_note(summary: RunSummary, listed: int = STATE_LISTED_NODES) -> str | None:
    """`<n> node(s) warned: <first ids>[ and <k> more]` for a successful run in which nodes warned, else None."""
    unique_ids = list(dict.fromkeys(node.unique_id for node in summary.warned))
    if not summary.success or not unique_ids:
        return None
    more = len(unique_ids) - listed
    named = ", ".join(unique_ids[:listed]) + (f" and {more} more" if more > 0 else "")
    return f"{len(unique_ids)} node{'' if len(unique_ids) == 1 else 's'} warned: {named}"


def summarize(
    target: str,
    outcomes: list[StepOutcome],
    success: bool,
    slowest: int = 10,
    attempts: list[dict[str, Any]] | None = None,
    left_out: list[str] | None = None,
    budget: int | None = None,
    budget_setting: str | None = None,
    exception_task_runs: int | None = None,
    slow_node_seconds: float | None = None,
    state_task_runs: int | None = None,
    recording_failure: str | None = None,
    node_view: str | None = None,
) -> RunSummary:
    """The summary of a run's steps; `attempts` are the failed attempts before the last (see `run_job`), `left_out`
    the nodes that got no task run under the logs + events `budget` (see `dbt2prefect.node_budget`)."""
    nodes = [node for outcome in outcomes for node in outcome.nodes]
    return RunSummary(
        target=target,
        success=success,
        steps=[outcome.to_record() for outcome in outcomes],
        counts=dict(sorted(Counter(node.status for node in nodes).items())),
        failures=[node for node in nodes if node.status in FAILED_STATUSES],
        slowest=sorted(nodes, key=lambda node: node.execution_time, reverse=True)[:slowest],
        nodes=nodes,
        seconds=sum(outcome.seconds for outcome in outcomes),
        attempts=list(attempts or []),
        left_out=list(left_out or []),
        budget=budget,
        budget_setting=budget_setting,
        exception_task_runs=exception_task_runs,
        slow_node_seconds=slow_node_seconds,
        state_task_runs=state_task_runs,
        recording_failure=recording_failure,
        node_view=node_view,
    )


def to_markdown(summary: RunSummary, artifact_location: str | None) -> str:
    verdict = ("succeeded with warnings" if summary.warned else "succeeded") if summary.success else "FAILED"
    if summary.attempts:
        verdict += f" on attempt {len(summary.attempts) + 1}"
    lines = [f"# dbt run on `{summary.target}` {verdict}", ""]
    if summary.attempts:
        lines += ["## Earlier attempts", "", "| attempt | transient cause | failure |", "|---|---|---|"]
        for attempt in summary.attempts:
            cause = attempt.get("transient") or "none"
            lines.append(
                f"| {attempt['attempt']} | {markdown_cell(str(cause))} | {markdown_cell(str(attempt['failure'])[:500])} |"
            )
        lines.append("")
    counts = ", ".join(f"{status}: {count}" for status, count in summary.counts.items()) or "no nodes"
    lines += [f"**Nodes by status:** {counts}  ", f"**dbt time:** {summary.seconds:.1f} s", ""]
    lines += ["## Steps", "", "| # | step | result | nodes | seconds |", "|---|---|---|---|---|"]
    for step in summary.steps:
        result = "ok" if step["success"] else ("failed" if step["fails_run"] else "failed (does not fail the run)")
        lines.append(
            f"| {step['index']} | {markdown_cell(step['label'])} | {result} | {step['nodes']} | {step['seconds']} |"
        )
    lines += _node_view(summary)
    lines += _left_out(summary)
    # Warnings and failures are lists, not tables: a node id and a dbt message are long unbroken text, and in a
    # table they push the status and the message out of a narrow window.
    if summary.warned:
        lines += ["", "## Warnings", ""]
        lines += [_node_line(node) for node in summary.warned]
    if summary.failures:
        lines += ["", "## Failures", ""]
        lines += [_node_line(node) for node in summary.failures]
    if summary.slowest:
        lines += ["", "## Slowest nodes", "", "| node | seconds |", "|---|---|"]
        lines += [f"| `{node.unique_id}` | {node.execution_time:.2f} |" for node in summary.slowest]
    if artifact_location:
        lines += ["", f"dbt artifacts: `{artifact_location}`"]
    return "\n".join(lines) + "\n"


def _node_line(node: NodeResult) -> str:
    """`- **warn** `test.x.y` (step 2): <message>`: one list item per node, status first."""
    return f"- **{node.status}** `{node.unique_id}` (step {node.step}): {markdown_text(node.message[:500])}"


TABLE_MESSAGE = 160
"""The characters of a node's message in the table artifact (its first line): the full text is in the Markdown
summary and the run's dbt artifacts."""


LISTED_LEFT_OUT = 20
"""At most this many left-out nodes are named in the summary (the count covers all of them)."""


def _node_view(summary: RunSummary) -> list[str]:
    """The node view the run used and why, and in the views that record task runs which nodes have one (the lean
    mode: no lines)."""
    lines = ["", summary.node_view] if summary.node_view is not None else []  # our own text: nothing to escape
    if summary.slow_node_seconds is not None:
        count = summary.exception_task_runs or 0
        which = (
            f"node{'' if count == 1 else 's'} that failed, warned or ran longer than {summary.slow_node_seconds:g} s "
            '(`node_task_runs = "exceptions"`)'
        )
    elif summary.state_task_runs is not None:
        count = summary.state_task_runs
        which = (
            f"node{'' if count == 1 else 's'}, each recorded from dbt's events, Running first if it ran past "
            f"{RUNNING_AFTER_SECONDS:g} s "
            '(`node_task_runs = "states"`: no asset events, dbt\'s log lines in `dbt.log`)'
        )
    else:
        return lines
    lines += ["", f"**Task runs:** {count} {which}; every node is in the node table (artifact `...-nodes`)."]
    if summary.recording_failure is not None:
        lines.append(f"Recording the task runs stopped there: {markdown_text(summary.recording_failure[:500])}")
    return lines


def _left_out(summary: RunSummary) -> list[str]:
    """The summary's "Left out of Prefect" section: which nodes got no task run, and why (none: no section)."""
    if not summary.left_out:
        return []
    left_out = list(dict.fromkeys(summary.left_out))  # a node of two steps is left out once per step
    total = len({node.unique_id for node in summary.nodes}) or len(left_out)
    setting = summary.budget_setting or f"logs_events_per_minute = {summary.budget}"
    over = (
        f"and more of them would have gone over `[tenant.observability] {setting}` (the workspace's budget per minute)."
    )
    if summary.slow_node_seconds is not None:
        why = (
            f"{len(left_out)} of the nodes that failed, warned or were slow got no task run: recording one takes "
            f"{RECORDED_COST} API requests and is counted as {RECORDED_COST} events, {over}"
        )
    elif summary.state_task_runs is not None:
        why = (
            f"{len(left_out)} of {total} nodes ran without a task run: each is counted as {RECORDED_COST} (its "
            f"state events, or API requests), {over}"
        )
    else:
        why = (
            f"{len(left_out)} of {total} nodes ran without a task run and without sending their dbt log lines "
            f"to Prefect: a node's task run sends {NODE_COST} or more log lines and events (state changes, asset "
            "events, dbt's lines), and more of them would have "
            f"gone over `[tenant.observability] {setting}` (the workspace's logs + events budget per minute)."
        )
    lines = [
        "",
        "## Left out of Prefect",
        "",
        why + " Every node's status is in the node table (artifact `...-nodes`) and the sections above; dbt's full "
        "log is `dbt.log` with the run's artifacts.",
        "",
    ]
    named = [f"`{markdown_cell(uid)}`" for uid in left_out[:LISTED_LEFT_OUT]]
    more = len(left_out) - LISTED_LEFT_OUT
    lines.append("Left out: " + ", ".join(named) + (f" and {more} more" if more > 0 else ""))
    return lines


def to_table(summary: RunSummary) -> list[dict[str, Any]]:
    """One row per node and step, the short columns first (status, name, type, seconds, step) so that a narrow
    window shows them; then the message's first line and the node's unique id."""
    return [
        {
            "status": node.status,
            "name": node.name,
            "resource_type": node.resource_type,
            "seconds": round(node.execution_time, 3),
            "step": node.step,
            "message": _first_line(node.message, TABLE_MESSAGE),
            "unique_id": node.unique_id,
        }
        for node in summary.nodes
    ]


def _first_line(text: str, limit: int) -> str:
    line = text.strip().split("\n", 1)[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"
