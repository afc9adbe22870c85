"""The run summary reads in a narrow window: status first, long node ids and messages where they can wrap."""

from __future__ import annotations

from dbt2prefect.dbt_run import NodeResult
from dbt2prefect.summary import TABLE_MESSAGE, RunSummary, to_markdown, to_table

LONG_ID = "test.dbt_williamgrant.accepted_values_stg_crm__distributors_distributor_status__active__inactive"
MESSAGE = "Got 1 result, configured to warn if != 0\n" + "compiled code at target/compiled/" + "x" * 300


def _node(status: str) -> NodeResult:
    return NodeResult(LONG_ID, "test", "accepted_values_status", status, 0.25, MESSAGE, 2)


def _summary(*nodes: NodeResult) -> RunSummary:
    failed = [n for n in nodes if n.status in {"error", "fail"}]
    counts = {n.status: 1 for n in nodes}
    return RunSummary("dev", not failed, [], counts, failed, [], list(nodes), 1.0)


def test_warnings_and_failures_are_list_items_that_start_with_the_status() -> None:
    text = to_markdown(_summary(_node("warn"), _node("fail")), None)
    for section, status in (("## Warnings", "warn"), ("## Failures", "fail")):
        body = text.split(section, 1)[1].split("\n## ", 1)[0]
        items = [line for line in body.splitlines() if line.strip()]
        assert items == [
            f"- **{status}** `{LONG_ID}` (step 2): Got 1 result, configured to warn if != 0 compiled code at "
            f"target/compiled/{'x' * 300}"
        ]
        assert not any(line.startswith("|") for line in body.splitlines())


def test_the_table_artifact_puts_the_short_columns_first_and_the_messages_first_line_shortened() -> None:
    (row,) = to_table(_summary(_node("warn")))
    assert list(row) == ["status", "name", "resource_type", "seconds", "step", "message", "unique_id"]
    assert row["status"] == "warn" and row["name"] == "accepted_values_status" and row["unique_id"] == LONG_ID
    assert row["message"] == "Got 1 result, configured to warn if != 0"
    (long,) = to_table(_summary(NodeResult(LONG_ID, "test", "t", "warn", 0.1, "y" * 500, 1)))
    assert len(long["message"]) == TABLE_MESSAGE and long["message"].endswith("\u2026")
