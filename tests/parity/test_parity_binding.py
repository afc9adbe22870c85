"""Values bound to runs: writer records in the artifact store, and the findings when a later run rewrote (or is
rewriting) what parity compares; Snowflake reads the baseline's tables as of its run's end with Time Travel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlglot

from dbt2prefect.artifact_store import ArtifactStore, RunKey, WriterRecord
from dbt2prefect.fingerprint_sql import CompareColumn, FingerprintSpec
from dbt2prefect.warehouse import Relation, RelationStats, warehouse_from_profile_output
from parity.binding import Write, binding_findings, store_writes
from parity.model import Reason, Severity

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
JOB, OTHER_JOB = 70403103936332, 70403103936340
FX, REVENUE, VIEW = "model.p.fct_fx_rates", "model.p.rpt_revenue", "model.p.stg_rates"
RELATIONS = [(FX, "table"), (REVENUE, "table"), (VIEW, "view")]


def _record(store: ArtifactStore, run_id: str, start: int, end: int | None, nodes: set[str] | None = None) -> None:
    started = T0 + timedelta(minutes=start)
    record = WriterRecord(
        run_id,
        started,
        started + timedelta(hours=1),
        finished_at=None if end is None else T0 + timedelta(minutes=end),
        status="running" if end is None else "success",
        job_id=JOB,
        nodes=None if nodes is None else frozenset(nodes),
    )
    store.record_writer(RunKey("t", "d", "parity", run_id), record)


def test_writer_records_list_the_runs_that_wrote_after_a_time(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    _record(store, "before", 0, 5, {FX})
    _record(store, "named", 10, 20, {FX, REVENUE})
    _record(store, "after", 30, 40, {FX})
    _record(store, "running", 50, None)
    _record(store, "dead", -200, None)  # never reported its end; expired an hour after its start
    assert [r.flow_run_id for r in store.writers("t", "d", "parity")] == ["dead", "before", "named", "after", "running"]
    since, now = T0 + timedelta(minutes=10), T0 + timedelta(minutes=60)
    writes = store_writes(store, "t", "d", "parity", since, now, exclude="named")
    assert [(w.run_id, w.nodes, w.finished_at is None) for w in writes] == [
        ("after", frozenset({FX}), False),
        ("running", None, True),  # running: may write anything
    ]


def test_a_hand_started_run_on_the_parity_target_makes_the_candidate_stale() -> None:
    later = Write("prefect", "hand-run", None, T0 + timedelta(hours=1), frozenset({FX}))
    [finding] = binding_findings(RELATIONS, [], [later], time_travel=False, candidate_run="named", job_id=JOB)
    assert (finding.reason, finding.severity, finding.subject) == (
        Reason.CANDIDATE_DATA_STALE.value,
        Severity.ERROR,
        "hand-run",
    )
    assert FX in finding.message and REVENUE not in finding.message and "(no dbt Cloud job)" in finding.message
    assert f"--candidate-run {JOB}=latest" in (finding.explanation or "")


def test_a_run_writing_now_is_detected_not_raced() -> None:
    running = Write("prefect", "busy", JOB, None, None)
    [finding] = binding_findings(RELATIONS, [], [running], time_travel=False, candidate_run="named", job_id=JOB)
    assert "is writing now" in finding.message and "3 relation(s)" in finding.message
    assert (finding.explanation or "").startswith("wait until that run ends")


def test_a_later_dbt_cloud_run_moves_the_baseline_unless_time_travel_reads_its_tables() -> None:
    hourly = Write("dbt_cloud", "9002", OTHER_JOB, T0 + timedelta(hours=1), frozenset({FX, VIEW}))
    [moved] = binding_findings(RELATIONS, [hourly], [], time_travel=False, candidate_run="named", job_id=JOB)
    assert (moved.reason, moved.severity) == (Reason.BASELINE_MOVED.value, Severity.ERROR)
    assert "2 relation(s)" in moved.message and "dbt Cloud run 9002 of job" in moved.message
    # With Time Travel the tables are read as of the baseline run's end; the view cannot be.
    [view] = binding_findings(RELATIONS, [hourly], [], time_travel=True, candidate_run="named", job_id=JOB)
    assert view.reason == Reason.BASELINE_MOVED.value and VIEW in view.message and FX not in view.message


def test_relations_last_written_by_the_same_job_on_both_sides_are_compared_and_noted() -> None:
    cloud = Write("dbt_cloud", "9002", OTHER_JOB, T0 + timedelta(hours=1), frozenset({FX}))
    prefect = Write("prefect", "flow-b", OTHER_JOB, T0 + timedelta(hours=2), frozenset({FX}))
    [note] = binding_findings(RELATIONS, [cloud], [prefect], time_travel=False, candidate_run="named", job_id=JOB)
    assert (note.reason, note.severity) == (Reason.REWRITTEN_BY_SAME_JOB.value, Severity.INFO)
    other = Write("prefect", "flow-c", None, T0 + timedelta(hours=2), frozenset({FX}))
    reasons = {f.reason for f in binding_findings(RELATIONS, [cloud], [other], False, "named", JOB)}
    assert reasons == {Reason.BASELINE_MOVED.value, Reason.CANDIDATE_DATA_STALE.value}


def test_snowflake_time_travel_statements_parse_as_snowflake_sql() -> None:
    """Unverified against a live account: the statement is checked for shape and by sqlglot's Snowflake parser."""
    warehouse = warehouse_from_profile_output({"type": "snowflake", "account": "wg", "user": "u"})
    assert warehouse.time_travel
    table = RelationStats(Relation("prod", "marts", "orders"), True, "table", located=("MARTS", "ORDERS"))
    view = RelationStats(Relation("prod", "marts", "v"), True, "view", located=("MARTS", "V"))
    warehouse.as_of = T0
    named = warehouse.relation_sql(table)
    assert named == '"PROD"."MARTS"."ORDERS" at(timestamp => \'2026-03-01T02:00:00+00:00\'::timestamp_tz)'
    assert warehouse.relation_sql(view) == '"PROD"."MARTS"."V"'  # Time Travel does not read views
    spec = FingerprintSpec.of([CompareColumn("AMOUNT", 6), CompareColumn("ID")])
    statements = [
        warehouse.dialect.measure_part(0, named, spec),
        warehouse.dialect.column_fingerprints(named, spec),
        warehouse.dialect.key_row_hashes(named, spec, [CompareColumn("ID")], 64, [1, 2], 100),
    ]
    for sql in statements:
        parsed = sqlglot.parse_one(sql, read="snowflake")
        assert parsed.find(sqlglot.exp.Table) is not None, sql
        assert "AT (TIMESTAMP => CAST(" in parsed.sql(dialect="snowflake").upper(), sql  # the clause was understood
    warehouse.as_of = None
    assert warehouse.relation_sql(table) == '"PROD"."MARTS"."ORDERS"'


@pytest.mark.parametrize("status", ["success", "failed", "crashed"])
def test_writer_records_round_trip(tmp_path: Path, status: str) -> None:
    store = ArtifactStore(str(tmp_path))
    record = WriterRecord("r1", T0, T0 + timedelta(hours=12), T0 + timedelta(minutes=3), status, JOB, frozenset({FX}))
    store.record_writer(RunKey("t", "d", "parity", "r1"), record)
    assert store.writers("t", "d", "parity") == [record]
