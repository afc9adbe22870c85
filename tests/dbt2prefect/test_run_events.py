"""The `dbt2prefect.run.warned` event: when a run has one and what it carries (the flow's emission: tests/flows)."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import uuid4

from prefect.client.schemas.objects import FlowRun

from dbt2prefect.dbt_run import NodeResult, RunPaths, StepOutcome, run_invocations
from dbt2prefect.params import Invocation
from dbt2prefect.run_events import LISTED_NODES, RUN_WARNED_EVENT, warned_event
from dbt2prefect.summary import summarize


def _node(unique_id: str, status: str, step: int = 0) -> NodeResult:
    return NodeResult(unique_id, "test", unique_id.rsplit(".", 1)[-1], status, 0.1, "Got 1 result", step)


def _step(index: int, *nodes: NodeResult) -> StepOutcome:
    return StepOutcome(index, f"dbt test {index}", "test", ["test"], Path("."), True, success=True, nodes=list(nodes))


def test_a_deployment_run_that_warned_has_one_event_naming_the_run_its_deployment_flow_and_job() -> None:
    warned = [_node(f"test.p.warns_{i:02}", "warn") for i in range(LISTED_NODES + 5)]
    # The same test warning in a later step is one warned node.
    steps = [_step(0, *warned, _node("test.p.passes", "pass")), _step(1, _node("test.p.warns_00", "warn", step=1))]
    run = FlowRun(id=uuid4(), name="job-70 Nightly (brave-fox)", flow_id=uuid4(), deployment_id=uuid4())

    event = warned_event(summarize("prod", steps, success=True), run, "run_dbt_wg", "dbt_wg", job_id=70)

    assert event is not None and event.event == RUN_WARNED_EVENT
    assert event.resource.root == {
        "prefect.resource.id": f"prefect.flow-run.{run.id}",
        "prefect.resource.name": "job-70 Nightly (brave-fox)",
    }
    assert [resource.root for resource in event.related] == [
        {
            "prefect.resource.id": f"prefect.deployment.{run.deployment_id}",
            "prefect.resource.name": "dbt_wg",
            "prefect.resource.role": "deployment",
        },
        {
            "prefect.resource.id": f"prefect.flow.{run.flow_id}",
            "prefect.resource.role": "flow",
            "prefect.resource.name": "run_dbt_wg",
        },
        {"prefect.resource.id": "prefect.tag.dbt-cloud-job-70", "prefect.resource.role": "tag"},
    ]
    assert event.payload == {
        "warned_nodes": LISTED_NODES + 5,
        "unique_ids": [node.unique_id for node in warned[:LISTED_NODES]],
        "dbt_cloud_job_id": 70,
    }


def test_no_event_when_nothing_warned_or_the_run_failed() -> None:
    run = FlowRun(id=uuid4(), name="quick-owl", flow_id=uuid4())
    clean = [_step(0, _node("test.p.a", "pass"), _node("model.p.b", "success"))]
    warned_but_failed = [_step(0, _node("test.p.a", "warn"), _node("test.p.b", "fail"))]

    assert warned_event(summarize("dev", clean, success=True), run, "run_dbt_wg", None, None) is None
    assert warned_event(summarize("dev", warned_but_failed, success=False), run, "run_dbt_wg", None, None) is None


def test_a_source_freshness_warning_is_a_warned_node(tmp_path: Path) -> None:
    # `dbt source freshness` writes sources.json (dbt 1.11, schema sources/v3) and no run_results.json.
    sources = {
        "metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/sources/v3.json"},
        "results": [
            {"unique_id": "source.p.crm.distributors", "status": "warn", "execution_time": 0.2, "criteria": {}},
            {"unique_id": "source.p.erp.orders", "status": "pass", "execution_time": 0.1, "criteria": {}},
            {"unique_id": "source.p.erp.gone", "status": "runtime error", "error": "table not found"},
        ],
    }

    def freshness(args: list[str], paths: RunPaths, target_path: Path) -> tuple[bool, str | None]:
        target_path.mkdir(parents=True)
        (target_path / "sources.json").write_text(json.dumps(sources))
        return False, None

    paths = RunPaths(root=tmp_path, project_dir=tmp_path, profiles_dir=tmp_path)
    check = Invocation(["source", "freshness"], "dbt source freshness (checkbox)", "source freshness", fails_run=False)
    (outcome,) = run_invocations([check], paths, freshness)

    assert [(node.unique_id, node.status) for node in outcome.nodes] == [
        ("source.p.crm.distributors", "warn"),
        ("source.p.erp.orders", "pass"),
        ("source.p.erp.gone", "runtime error"),
    ]
    assert outcome.failed_nodes[0].message == "table not found"
    run = FlowRun(id=uuid4(), name="quick-owl", flow_id=uuid4())
    event = warned_event(summarize("dev", [outcome], success=True), run, "run_dbt_wg", None, None)
    assert event is not None and event.payload["unique_ids"] == ["source.p.crm.distributors"]
    assert [resource.role for resource in event.related] == ["flow"], "a run of no deployment and no job"
