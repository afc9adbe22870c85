"""The demo end to end, once per module: real Prefect server and worker, sandbox dbt Cloud, real dbt on DuckDB.

`keep=True` leaves the servers up so the tests can read what a person would see in the Prefect UI, then the
fixture stops them. The nightly baseline is also where the dbt Cloud run API is checked over HTTP (steps, artifacts
per step, run flags). Its duration is measured by bench/demo.py, not asserted here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbt2prefect.artifact_store import ArtifactStore, RunKey
from dbt2prefect.dbt_cloud import RunStatus
from dbt2prefect.prefect_gateway import connect_prefect
from dbt2prefect.tenant import load_tenant
from migration.apply import deployment_triggers
from migration.dbt_cloud.client import DbtCloudClient
from migration.dbt_cloud.models import Run
from migration.export import export_inventory
from sandbox.demo import DemoResult, StepResult, StepStatus, run_demo
from sandbox.stack import prefect_api

# The first tenant's demo jobs, from its settings file.
BASELINE_JOBS = load_tenant().sandbox.demo_jobs
NIGHTLY = 70403103936332
FRESHNESS_STEP, BUILD_STEP, DOCS_STEP = 4, 5, 6
FIRED_JOB = load_tenant().sandbox.demo_fired_job
CHAINED_JOB = 70403103936373  # 'Supply chain after nightly', chained to the nightly job (success only)

pytestmark = pytest.mark.e2e  # the demo starts its own Prefect server and worker and builds with dbt

STORY = [
    "data",
    "servers",
    "baselines",
    "prefect",
    "worker",
    "export",
    "plan",
    "apply",
    "candidates",
    "parity",
    "cutover",
    "scheduled_run",
    "chained_run",
    "notifications",
    "status",
    "rollback",
    "status_after_rollback",
    "shadow_feed",
    "shadow_runs",
    "readiness",
    "shadow_cutover",
    "broken_run",
    "guard_rollback",
]
SHADOW_JOB = FIRED_JOB  # the demo's parallel-run period shadows the fired job


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def started(self, key: str, title: str) -> None:
        self.events.append(("started", key))

    def finished(self, result: StepResult) -> None:
        self.events.append(("finished", result.key))


@pytest.fixture(scope="module")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, recorder: Recorder) -> Iterator[DemoResult]:
    result = run_demo(tmp_path_factory.mktemp("demo") / "work", keep=True, observer=recorder)
    try:
        yield result
    finally:
        result.close()


def _read_prefect(demo: DemoResult, call: Any) -> Any:
    from prefect.client.orchestration import get_client

    assert demo.stack is not None

    async def run() -> Any:
        async with get_client() as client:
            return await call(client)

    with prefect_api(demo.stack.prefect.api_url):
        return asyncio.run(run())


def _through_gateway(demo: DemoResult, call: Any) -> Any:
    assert demo.stack is not None
    with prefect_api(demo.stack.prefect.api_url), connect_prefect() as prefect:
        return call(prefect)


def test_every_step_of_the_story_passes_in_order(demo: DemoResult, recorder: Recorder) -> None:
    failed = demo.failed
    assert failed is None, f"{failed.key}: {failed.summary}" if failed else ""
    assert [step.key for step in demo.steps] == STORY
    assert all(step.status is StepStatus.OK and step.summary for step in demo.steps)
    assert recorder.events == [(kind, key) for key in STORY for kind in ("started", "finished")]


def test_parity_compares_deployment_runs_that_the_worker_executed(demo: DemoResult) -> None:
    _, spec = demo.step("apply").value
    candidates = demo.step("candidates").value
    assert [c.job_id for c in candidates] == list(BASELINE_JOBS)
    report = demo.step("parity").value.report
    compared = {job.job_id: job.candidate.run_id for job in report.jobs}
    assert demo.stack is not None
    tenant = demo.stack.tenant
    assert tenant.artifact_store_url.startswith("s3://") and tenant.ledger_url.startswith("s3://")
    assert tenant.code_storage is not None and tenant.code_storage.repository == demo.stack.paths.code_remote.as_uri()
    store = ArtifactStore(tenant.artifact_store_url)
    for candidate in candidates:
        run = _read_prefect(demo, lambda c, run_id=candidate.run.flow_run_id: c.read_flow_run(run_id))
        assert str(run.deployment_id) == candidate.run.deployment_id and run.state.is_completed()
        schedule = spec.schedule(f"job-{candidate.job_id}").parameters
        assert run.parameters == {**schedule, "target": "parity", "parity_candidate": True}
        # Named apart from the job's own runs: no trigger or notification of the job follows a parity run.
        assert run.name.startswith(f"parity-job-{candidate.job_id} "), run.name
        assert compared[candidate.job_id] == candidate.run.flow_run_id
        # Its artifacts come back through object storage, and its code came from the worker's own clone.
        key = RunKey(spec.tenant, "dbt_wg", "parity", candidate.run.flow_run_id)
        assert store.has(key, "run_results.json")
        assert Path(store.read_json(key, "run.json")["code_root"]).is_relative_to(demo.stack.paths.worker)


def test_a_fired_schedule_is_a_completed_scheduler_run(demo: DemoResult) -> None:
    fired = demo.step("scheduled_run").value
    assert fired.job_id == FIRED_JOB and fired.run.completed
    assert "auto-scheduled" in fired.run.tags  # made by Prefect's scheduler, not by hand
    _, spec = demo.step("apply").value
    assert fired.run.parameters == {**spec.parameters, **spec.schedule(f"job-{FIRED_JOB}").parameters}
    row = next(r for r in demo.step("status").value.jobs if r.job_id == FIRED_JOB)
    assert row.prefect_last_run is not None and row.prefect_last_run.id == fired.run.flow_run_id


def test_a_completed_run_of_the_nightly_job_starts_its_chained_job_through_the_trigger(demo: DemoResult) -> None:
    plan = demo.step("plan").value
    _, spec = demo.step("apply").value
    (trigger,) = [t for t in plan.triggers if t.upstream_job_id == NIGHTLY]
    assert (trigger.job_id, trigger.name) == (CHAINED_JOB, f"job-{CHAINED_JOB}-after-job-{NIGHTLY}")
    step = demo.step("chained_run")
    (chain,) = step.value
    assert chain.trigger == trigger.name and trigger.name in step.summary and chain.run.ui_url in step.summary
    upstream, chained = chain.upstream, chain.run
    assert upstream.job_id == NIGHTLY and upstream.run.completed
    assert upstream.run.parameters == {**spec.parameters, **spec.schedule(f"job-{NIGHTLY}").parameters}
    assert chained.job_id == CHAINED_JOB and chained.run.completed
    # The chained job's own parameters (its command line), as the applied trigger carries them.
    assert chained.run.parameters == {**spec.parameters, **spec.trigger(trigger.name).parameters}
    assert chained.run.parameters["dbt_cloud_job_id"] == CHAINED_JOB
    assert (chained.run.parameters["selector"], chained.run.parameters["target"]) == ("supply_chain", "prod")
    assert chained.run.name.startswith(f"job-{CHAINED_JOB} ")
    assert upstream.run.end_time is not None and chained.run.start_time is not None
    assert chained.run.start_time >= upstream.run.end_time
    # Deployment runs that the demo's worker picked up (it records the process it started), not in-process calls.
    for done in (upstream, chained):
        run = _read_prefect(demo, lambda c, run_id=done.run.flow_run_id: c.read_flow_run(run_id))
        assert str(run.deployment_id) == done.run.deployment_id and run.work_pool_name == spec.work_pool
        assert run.infrastructure_pid and run.state.is_completed()


def test_the_cut_over_jobs_notifications_reach_their_destinations(demo: DemoResult) -> None:
    from migration.notification_automations import notification_automations

    _, spec = demo.step("apply").value
    (chain,) = demo.step("chained_run").value
    sent = {(n["destination"], n["subject"]): n["body"] for n in demo.step("notifications").value}
    # The chained job's success (Slack, switched with its upstream job) and the nightly run's warnings (email, on
    # the run's dbt2prefect.run.warned event: a data test of the nightly selector warns on the sandbox's data).
    slack = sent[("slack:#data-alerts", "dbt job Supply chain after nightly: Completed")]
    email = sent[
        ("email:data-oncall@williamgrant.example", "dbt job Nightly production build: Completed with warnings")
    ]
    assert chain.run.run.name in slack and chain.upstream.run.name in email
    assert "/runs/flow-run/" in slack, slack  # a link to the run in the sandbox's Prefect UI
    assert demo.workdir.joinpath("notifications.jsonl").read_text().count("\n") >= len(sent)
    # apply made one automation per job and destination, and per setting that tells failures one for the runs that
    # die before the flow starts; rollback switched them all off again.
    found = _through_gateway(demo, lambda prefect: notification_automations(prefect, spec.name))
    assert set(found) == {n.name for n in spec.notifications}
    assert len([name for name in found if name.endswith("-before-start")]) == 2 and len(found) == 6
    assert not any(a.enabled for a in found.values())


def test_baselines_are_successful_dbt_cloud_runs(demo: DemoResult) -> None:
    runs = demo.step("baselines").value
    assert [r.job_id for r in runs] == list(BASELINE_JOBS)
    assert all(r.succeeded and r.steps for r in runs)


@pytest.fixture(scope="module")
def nightly(demo: DemoResult) -> Iterator[tuple[DbtCloudClient, Run]]:
    """The nightly baseline (freshness + build + docs) as the dbt Cloud API client reads it back over HTTP."""
    assert demo.stack is not None
    cloud = demo.stack.dbt_cloud
    (baseline,) = [r for r in demo.step("baselines").value if r.job_id == NIGHTLY]
    with DbtCloudClient(cloud.url, cloud.account_id, cloud.token) as client:
        yield client, client.get_run(baseline.run_id)


def test_the_nightly_baseline_has_dbt_clouds_steps(nightly: tuple[DbtCloudClient, Run]) -> None:
    _, run = nightly
    failed = [s for s in run.run_steps if s.status != 10]
    assert run.status == RunStatus.SUCCESS, f"failed steps: {[(s.name, (s.logs or '')[-2000:]) for s in failed]}"
    assert [(s.index, s.name) for s in run.run_steps] == [
        (1, "Clone git repository"),
        (2, "Create profile from connection DuckDB (sandbox)"),
        (3, "Invoke dbt with `dbt deps`"),
        (4, "Invoke dbt with `dbt source freshness`"),
        (5, "Invoke dbt with `dbt build --selector nightly`"),
        (6, "Invoke dbt with `dbt docs generate`"),
    ]
    build = run.run_steps[BUILD_STEP - 1]
    assert "ERROR=0" in (build.logs or "") and "Done. PASS=" in (build.logs or "")
    assert run.started_at is not None and run.finished_at is not None and run.finished_at >= run.started_at


def test_artifacts_per_step_and_the_step_pitfall(nightly: tuple[DbtCloudClient, Run]) -> None:
    client, run = nightly
    assert client.list_run_artifacts(run.id, step=FRESHNESS_STEP) == ["manifest.json", "sources.json"]
    assert client.list_run_artifacts(run.id, step=BUILD_STEP) == ["manifest.json", "run_results.json"]
    assert "catalog.json" in client.list_run_artifacts(run.id)  # no step: the last (docs) step
    pinned = client.get_run_artifact(run.id, "run_results.json", step=BUILD_STEP)
    assert pinned["args"]["which"] == "build"
    assert {r["status"] for r in pinned["results"]} <= {"success", "pass", "warn"} and len(pinned["results"]) > 20
    unpinned = client.get_run_artifact(run.id, "run_results.json", step=None)
    assert unpinned["args"]["which"] == "generate"  # why callers must pin the step
    sources = client.get_run_artifact(run.id, "sources.json", step=FRESHNESS_STEP)
    assert sources["results"] and all(r["status"] in ("pass", "warn") for r in sources["results"])
    catalog = client.get_run_artifact(run.id, "catalog.json", step=DOCS_STEP)
    assert any(key.startswith("model.dbt_williamgrant.") for key in catalog["nodes"])


def test_run_flags_and_latest_successful_run(nightly: tuple[DbtCloudClient, Run]) -> None:
    client, run = nightly
    assert run.has_docs_generated and run.has_sources_generated and run.artifacts_saved
    latest = client.latest_successful_run(NIGHTLY)
    assert latest is not None and latest.id == run.id
    inventory = export_inventory(client, max_workers=2)
    assert inventory.latest_successful_runs()[NIGHTLY] == run.id


def test_plan_has_a_schedule_per_scheduled_job_and_apply_created_them_inactive(demo: DemoResult) -> None:
    plan = demo.step("plan").value
    assert {s.job_id for s in plan.schedules} >= set(BASELINE_JOBS)
    assert plan.blocking() == []
    diff, spec = demo.step("apply").value
    assert diff.deployment.status == "added"
    assert sorted(c.slug for c in diff.schedules if c.status == "added") == sorted(s.slug for s in plan.schedules)
    # Workers clone the sandbox's git remote (GitHub's stand-in), as a managed pool's runs clone the repository.
    assert demo.stack is not None
    clone = {"id": "clone", "repository": demo.stack.paths.code_remote.as_uri(), "branch": "main"}
    assert spec.pull_steps == [{"prefect.deployments.steps.git_clone": clone}]
    assert spec.job_variables["env"] == {"DBT2PREFECT_TENANT_FILE": "tenants/dbt_williamgrant.toml"}


def test_parity_passes_with_an_html_report(demo: DemoResult) -> None:
    outcome = demo.step("parity").value
    assert outcome.report.verdict.value == "PASS"
    assert sorted(job.job_id for job in outcome.report.jobs) == sorted(BASELINE_JOBS)
    assert outcome.html.is_file() and outcome.html.is_relative_to(demo.workdir)
    # The report lives in object storage, where cutover (which then passed on these verdicts) reads it.
    assert outcome.stored.startswith("s3://") and outcome.stored.endswith(outcome.folder.name)


def test_cutover_then_rollback_switch_both_sides_and_back(demo: DemoResult) -> None:
    cut = demo.step("cutover").value
    assert [job.action for job in cut.jobs] == ["cut over"] * len(BASELINE_JOBS) and cut.ok
    after_cut = {row.job_id: row for row in demo.step("status").value.jobs}
    back = demo.step("rollback").value
    assert [job.action for job in back.jobs] == ["rolled back"] * len(BASELINE_JOBS) and back.ok
    after_back = {row.job_id: row for row in demo.step("status_after_rollback").value.jobs}
    for job_id in BASELINE_JOBS:
        assert (after_cut[job_id].dbt_cloud_schedule_on, after_cut[job_id].prefect_schedule) == (False, "active")
        assert after_cut[job_id].parity_verdict == "PASS"
        assert (after_back[job_id].dbt_cloud_schedule_on, after_back[job_id].prefect_schedule) == (True, "paused")
    # The chained job's trigger follows its upstream job: on while it is cut over, off again after rollback.
    trigger = f"job-{CHAINED_JOB}-after-job-{NIGHTLY}"
    assert f"trigger {trigger} on" in demo.step("status").summary
    assert f"trigger {trigger} off" in demo.step("status_after_rollback").summary
    _, spec = demo.step("apply").value

    def triggers(prefect: Any) -> Any:
        found = prefect.read_deployment(spec.full_name)
        return deployment_triggers(prefect, found.id)

    assert _through_gateway(demo, triggers)[trigger].enabled is False


def test_the_prefect_ui_shows_the_deployment_schedules_and_run_logs(demo: DemoResult) -> None:
    plan = demo.step("plan").value
    deployment = _read_prefect(demo, lambda c: c.read_deployment_by_name(f"{plan.flow_name}/{plan.deployment_name}"))
    assert sorted(s.slug for s in deployment.schedules) == sorted(s.slug for s in plan.schedules)
    assert not any(s.active for s in deployment.schedules)  # rolled back: paused again
    run_id = demo.step("candidates").value[0].run.flow_run_id  # the nightly build, with the warning test

    async def logs(client: Any) -> Any:
        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

        return await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))

    # The test session logs at WARNING: the project's one warning test is what reaches the server.
    messages = [log.message for log in _read_prefect(demo, logs)]
    assert any("accepted_values" in message for message in messages), messages[-5:]


def test_a_rerun_starts_from_an_empty_work_folder(demo: DemoResult) -> None:
    # The fixture's folder holds one run's state; the marker lets the next run empty it safely.
    assert (demo.workdir / ".dbt2prefect-sandbox").is_file()
    reports = list((demo.workdir / "parity").glob("*/report.json"))
    assert len(reports) == 1


def test_the_prefect_ui_calls_the_api_of_the_server_it_started(demo: DemoResult) -> None:
    import httpx

    assert demo.stack is not None
    settings = httpx.get(f"{demo.stack.prefect.url}/ui-settings", timeout=30).json()
    assert settings["api_url"] == demo.stack.prefect.api_url


def test_the_exports_demo_keep_prints_let_doctor_and_status_run_in_another_shell(
    demo: DemoResult, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    from cli.common import console
    from cli.sandbox_cmd import print_stack

    assert demo.stack is not None
    with console.capture() as printed:
        print_stack(demo.stack, token_given=False)  # what `demo --keep` (and `sandbox up`) print
    exports = [line.strip() for line in printed.get().splitlines() if line.strip().startswith("export ")]
    assert {line.split("=", 1)[0] for line in exports} >= {
        "export PREFECT_API_URL",
        "export DBT2PREFECT_TENANT_FILE",
        f"export {demo.stack.token_env}",
        "export AWS_ENDPOINT_URL_S3",
    }
    # Another shell: none of this process's Prefect or toolkit settings, only the venv's commands on PATH.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DBT2PREFECT_", "AWS_"))}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", COLUMNS="120")
    script = "\n".join(
        [*exports, "dbt2prefect blocks register --target dev", "dbt2prefect doctor", "dbt2prefect status"]
    )
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SNOWFLAKE" not in done.stdout + done.stderr  # the sandbox's DuckDB block, no Snowflake variables
    assert "All checks passed." in done.stdout and "Traceback" not in done.stderr
    assert demo.stack.dbt_cloud.token not in done.stdout + done.stderr


def test_each_dbt_cloud_run_of_the_shadowed_job_gets_a_twin_started_by_its_signed_webhook(demo: DemoResult) -> None:
    feed = demo.step("shadow_feed").value
    assert feed.job_id == SHADOW_JOB and feed.shadow_deployment.endswith("-shadow")
    shadowed = demo.step("shadow_runs").value
    assert len(shadowed) == 2  # the demo tenant's required_passes
    assert [r.pair.verdict.value for r in shadowed] == ["PASS", "PASS"]
    # Before the streak was long enough, cutover refused the job and said what it lacked; after it, nothing.
    assert shadowed[0].refused is not None and "1 more consecutive PASS pair" in shadowed[0].refused
    assert shadowed[1].refused is None
    for done in shadowed:
        shadow = _read_prefect(demo, lambda c, run_id=done.shadow_run.run.flow_run_id: c.read_flow_run(run_id))
        # Started by the shadow deployment's trigger from the webhook's event, and run by the worker.
        assert shadow.parameters["dbt_cloud_run_id"] == done.dbt_cloud_run_id
        assert shadow.parameters["event"]["source"] == "webhook" and shadow.parameters["event"]["signature"]
        assert shadow.infrastructure_pid and shadow.state.is_completed()
        twin = _read_prefect(demo, lambda c, run_id=done.pair.prefect_run_id: c.read_flow_run(run_id))
        assert twin.name.startswith(f"shadow job-{SHADOW_JOB} ") and "shadow" in twin.tags
        assert twin.parameters["target"] == "parity" and twin.parameters["shadow_of_run"] == done.dbt_cloud_run_id
    assert len({r.dbt_cloud_run_id for r in shadowed}) == 2


def test_the_streak_earns_the_cutover_and_the_ledger_records_it(demo: DemoResult) -> None:
    ready = demo.step("readiness").value
    assert (ready.job_id, ready.streak, ready.required_passes, ready.pairs, ready.ready) == (SHADOW_JOB, 2, 2, 2, True)
    assert ready.warehouse_seconds > 0  # the twins' durations: what the period costs
    assert "streak 2/2 PASS" in demo.step("readiness").summary
    report = demo.step("shadow_cutover").value
    assert [(job.job_id, job.action) for job in report.jobs] == [(SHADOW_JOB, "cut over")]
    assert "ledger: shadow 2/2 PASS" in demo.step("shadow_cutover").summary


def test_a_broken_change_after_cutover_is_rolled_back_by_the_guard_and_told(demo: DemoResult) -> None:
    from migration.guard import GUARD_BY
    from migration.ledger import RecordKind

    failed, change = demo.step("broken_run").value
    assert failed.job_id == SHADOW_JOB and failed.run.state == "Failed"
    assert failed.run.name.startswith(f"job-{SHADOW_JOB} ") and "demo_broken_change.sql" in change
    outcome = demo.step("guard_rollback").value
    assert outcome.guard_run.completed
    assert outcome.guard_run.parameters == {"flow_run_id": f"prefect.flow-run.{failed.run.flow_run_id}"}
    tripped, started, verified = outcome.records[-3:]
    assert [tripped.kind, started.kind, verified.kind] == [
        RecordKind.GUARD_TRIPPED,
        RecordKind.ROLLBACK_STARTED,
        RecordKind.ROLLBACK_VERIFIED,
    ]
    assert tripped.guard_run == failed.run.flow_run_id and tripped.guard_action == "rollback"
    assert tripped.by == verified.by == GUARD_BY
    assert (outcome.status.dbt_cloud_schedule_on, outcome.status.prefect_schedule) == (True, "paused")
    assert outcome.status.guard == "off" and "guard trigger on" in demo.step("shadow_cutover").summary
    assert failed.run.flow_run_id in outcome.notification["body"] and "rolled back" in outcome.notification["body"]
    # The broken change was reverted in the code remote the worker clones.
    assert demo.stack is not None and demo.stack.remote is not None
    assert not (demo.stack.tenant.project_dir / "models" / "demo_broken_change.sql").exists()


def test_the_local_copy_of_the_parity_report_has_its_latest_json(demo: DemoResult) -> None:
    from parity.store import load_latest_report

    outcome = demo.step("parity").value
    copy = load_latest_report(demo.workdir / "parity")
    assert copy is not None and copy.verdict == outcome.report.verdict
    assert outcome.folder.parent == demo.workdir / "parity"
