"""`dbt2prefect status | cutover | rollback` through the CLI (CliRunner) on the sandbox and the real Prefect API."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from cli.app import app
from dbt2prefect.dbt_cloud import RunStatus
from dbt2prefect.names import schedule_job_id
from dbt2prefect.tenant import REPO_ROOT, load_tenant
from migration.apply import apply_deployment
from migration.dbt_cloud.client import DbtCloudClient
from migration.deployment import build_deployment
from migration.export import read_job_context
from migration.translate import build_plan
from parity.model import JobParity, ParityReport, RunRef, Verdict
from parity.store import write_report
from sandbox.dbt_cloud import SandboxDbtCloud
from sandbox.stack import derive_tenant_file, on_process_pool, sandbox_deployment_settings

NIGHTLY = 70403103936332
HOURLY = 70403103936340
runner = CliRunner()


async def _start_prefect_run(deployment: str, parameters: dict[str, Any]) -> str:
    from prefect.client.orchestration import get_client
    from prefect.states import Running

    async with get_client() as client:
        found = await client.read_deployment_by_name(deployment)
        run = await client.create_flow_run_from_deployment(found.id, parameters=parameters)
        await client.set_flow_run_state(run.id, Running(), force=True)
        return str(run.id)


@contextlib.contextmanager
def _sandbox_setup(root: Path) -> Iterator[dict[str, Any]]:
    """A sandbox dbt Cloud account, its plan applied as a deployment of its own, and a tenant file under `root`."""
    with SandboxDbtCloud.start() as cloud:
        base = load_tenant()
        deployment = f"dbt_wg_status_{uuid.uuid4().hex[:8]}"
        tenant = on_process_pool(base, "wg-test-process", deployment_name=deployment)
        with DbtCloudClient(cloud.url, cloud.account_id, cloud.token) as client:
            jobs = list(client.iter_jobs(state="all"))
            # As `plan` and `cutover` plan them: with the jobs' environments and environment variables.
            environments, variables = read_job_context(client, jobs)
            plan = build_plan(jobs, tenant, environments, variables=variables)
        apply_deployment(build_deployment(plan, tenant), create_pool=True)
        derive_tenant_file(
            root / "tenant.toml",
            overrides={
                "deployment_name": deployment,
                "ledger_url": str(root / "ledger"),
                "dbt_cloud": {"host": cloud.url, "account_id": cloud.account_id},
                # The deployment `apply` made above: a process pool running this checkout in place.
                **sandbox_deployment_settings("wg-test-process"),
                "notifications": {},  # `apply` above made none (see the automations test below)
            },
        )
        env = {
            "DBT2PREFECT_TENANT_FILE": str(root / "tenant.toml"),
            "DBT_CLOUD_API_TOKEN": cloud.token,
            "DBT2PREFECT_PARITY_DIR": str(root / "parity"),
            "COLUMNS": "250",
        }
        params = next(s.parameters for s in plan.schedules if s.job_id == NIGHTLY)
        yield {"cloud": cloud, "env": env, "deployment": f"{tenant.flow_name}/{deployment}", "params": params}


@pytest.fixture
def setup(tmp_path: Path, prefect_api: None) -> Iterator[dict[str, Any]]:
    """A sandbox of the test's own: for tests that switch jobs (dbt Cloud, Prefect and the ledger change)."""
    with _sandbox_setup(tmp_path) as made:
        yield made


@pytest.fixture(scope="module")
def unswitched(tmp_path_factory: pytest.TempPathFactory, prefect_api: None) -> Iterator[dict[str, Any]]:
    """One sandbox for the tests that switch nothing (refused or bad-input commands): they only read it."""
    with _sandbox_setup(tmp_path_factory.mktemp("unswitched")) as made:
        yield made


def _status(env: dict[str, str], exit_code: int = 0) -> dict[int, dict[str, Any]]:
    result = runner.invoke(app, ["status", "--json"], env=env)
    assert result.exit_code == exit_code, result.output
    return {row["job_id"]: row for row in json.loads(result.stdout)["jobs"]}


def _pass_verdict(job_id: int, root: Path) -> None:
    write_report(
        ParityReport.from_jobs(
            "dbt_williamgrant",
            [
                JobParity(
                    job_id=job_id,
                    verdict=Verdict.PASS,
                    baseline=RunRef(system="dbt_cloud", run_id="1"),
                    candidate=RunRef(system="prefect", run_id="x"),
                )
            ],
        ),
        root,
    )


def _emit(env: dict[str, str], path: Path) -> dict[str, bool]:
    # The sandbox account's chained job is a blocker finding that this tenant does not acknowledge.
    result = runner.invoke(app, ["emit", "--output", str(path), "--allow-blockers"], env=env)
    assert result.exit_code == 0, result.output
    (deployment,) = yaml.safe_load(path.read_text())["deployments"]
    return {s["slug"]: s["active"] for s in deployment["schedules"]}


def _prefect_deploy(path: Path) -> None:
    from prefect.settings import get_current_settings

    env = {**os.environ, "PREFECT_API_URL": str(get_current_settings().api.url)}
    command = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all", "--prefect-file", str(path)]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def test_a_redeploy_keeps_every_schedule_as_the_ledger_says(setup: dict[str, Any], tmp_path: Path) -> None:
    env = setup["env"]
    stale = _emit(env, tmp_path / "before.prefect.yaml")
    (slug,) = [s for s in stale if schedule_job_id(s) == NIGHTLY]
    assert not any(stale.values())
    _pass_verdict(NIGHTLY, tmp_path / "parity")
    assert runner.invoke(app, ["cutover", "--job", str(NIGHTLY)], env=env).exit_code == 0

    fresh = _emit(env, tmp_path / "after.prefect.yaml")
    assert fresh == {**stale, slug: True}  # the cut-over job keeps its schedule, now on; the others stay off
    _prefect_deploy(tmp_path / "after.prefect.yaml")
    rows = _status(env)
    assert rows[NIGHTLY]["prefect_schedule"] == "active" and rows[NIGHTLY]["disagreement"] is None
    assert rows[HOURLY]["prefect_schedule"] == "paused"

    _prefect_deploy(tmp_path / "before.prefect.yaml")  # an old file: it would pause production silently
    flagged = _status(env, exit_code=4)[NIGHTLY]  # 4: the job now runs nowhere
    assert flagged["prefect_schedule"] == "paused" and flagged["runs_on"] == "nowhere"
    assert "ledger says cut over" in flagged["disagreement"]
    table = runner.invoke(app, ["status"], env=env)
    assert table.exit_code == 4 and f"job {NIGHTLY}: runs nowhere" in table.stderr
    # The fix the message names: cutover again switches the schedule back on, as the ledger says.
    assert runner.invoke(app, ["cutover", "--job", str(NIGHTLY)], env=env).exit_code == 0
    assert _status(env)[NIGHTLY]["prefect_schedule"] == "active"


def test_status_cutover_rollback_through_the_cli(setup: dict[str, Any], tmp_path: Path) -> None:
    env, cloud = setup["env"], setup["cloud"]
    before = _status(env)
    assert before[NIGHTLY]["dbt_cloud_schedule_on"] is True
    assert before[NIGHTLY]["prefect_schedule"] == "paused"
    assert before[NIGHTLY]["ledger_state"] == "none" and before[NIGHTLY]["parity_verdict"] is None
    planned = runner.invoke(app, ["plan", "--json"], env=env)
    plan_jobs = {job["job_id"] for job in json.loads(planned.stdout)["jobs"]}
    unscheduled = {job["job_id"] for job in json.loads(planned.stdout)["jobs"] if job["schedule_slug"] is None}
    assert unscheduled and plan_jobs <= set(before), "status lists every job the plan knows, scheduled or not"

    refused = runner.invoke(app, ["cutover", "--job", str(NIGHTLY)], env=env)
    assert refused.exit_code == 1
    assert f"job {NIGHTLY}: has no parity verdict" in refused.output

    _pass_verdict(NIGHTLY, tmp_path / "parity")
    done = runner.invoke(app, ["cutover", "--job", str(NIGHTLY), "--by", "alice"], env=env)
    assert done.exit_code == 0, done.output
    assert "cut over" in done.stdout and "70403103936373" in done.stderr  # chained job warning

    cloud.app.state.add_run_record(NIGHTLY, int(RunStatus.SUCCESS))
    flow_run = asyncio.run(_start_prefect_run(setup["deployment"], setup["params"]))
    after = _status(env)[NIGHTLY]
    assert (after["dbt_cloud_schedule_on"], after["prefect_schedule"], after["ledger_state"]) == (
        False,
        "active",
        "cut over",
    )
    assert after["parity_verdict"] == "PASS"
    assert after["dbt_cloud_last_run"]["status"] == "success"
    assert after["prefect_last_run"]["id"] == flow_run and after["prefect_last_run"]["state"] == "Running"
    assert _status(env)[HOURLY]["ledger_state"] == "none"

    table = runner.invoke(app, ["status"], env=env)
    assert table.exit_code == 0 and "cut over" in table.stdout and "active" in table.stdout
    as_csv = runner.invoke(app, ["status", "--format", "csv"], env=env)
    assert as_csv.exit_code == 0, as_csv.output
    csv_rows = {int(row["job_id"]): row for row in csv.DictReader(io.StringIO(as_csv.stdout))}
    assert set(csv_rows) == set(before)
    assert (csv_rows[NIGHTLY]["dbt_cloud_schedule"], csv_rows[NIGHTLY]["ledger"]) == ("off", "cut over")
    assert csv_rows[NIGHTLY]["prefect_last_run"] == "Running" and csv_rows[NIGHTLY]["parity"] == "PASS"
    markdown = runner.invoke(app, ["status", "--format", "markdown"], env=env).stdout.splitlines()
    assert markdown[0].startswith("| job_id | job_name | dbt_cloud_schedule |") and len(markdown) == 2 + len(before)

    back = runner.invoke(app, ["rollback", "--json"], env=env)
    assert back.exit_code == 0, back.output
    assert [j["action"] for j in json.loads(back.stdout)["jobs"]] == ["rolled back"]
    final = _status(env)[NIGHTLY]
    assert (final["dbt_cloud_schedule_on"], final["prefect_schedule"], final["ledger_state"]) == (
        True,
        "paused",
        "rolled back",
    )


def test_rollback_of_unknown_job_and_bad_force_are_bad_input(unswitched: dict[str, Any]) -> None:
    env = unswitched["env"]
    unknown = runner.invoke(app, ["rollback", "--job", "123"], env=env)
    assert unknown.exit_code == 2 and "no cutover in the ledger" in unknown.output
    no_reason = runner.invoke(app, ["cutover", "--job", str(NIGHTLY), "--force"], env=env)
    assert no_reason.exit_code == 2 and "--force needs --reason" in no_reason.output
    assert unswitched["cloud"].token not in unknown.output + no_reason.output


def test_the_prefect_deploy_path_gets_the_automations_and_status_names_missing_ones(
    prefect_api: None, tmp_path: Path
) -> None:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    from dbt2prefect.prefect_gateway import connect_prefect
    from migration.notification_automations import notification_automations

    blocks = {"slack:#data-alerts": "st-slack", "email:data-oncall@williamgrant.example": "st-email"}
    for name in blocks.values():
        CustomWebhookNotificationBlock(name=name, url="http://127.0.0.1:9/notify").save(name, overwrite=True)
    deployment = f"dbt_wg_deploy_{uuid.uuid4().hex[:8]}"
    with SandboxDbtCloud.start() as cloud:
        derive_tenant_file(
            tmp_path / "tenant.toml",
            overrides={
                "deployment_name": deployment,
                "ledger_url": str(tmp_path / "ledger"),
                "dbt_cloud": {"host": cloud.url, "account_id": cloud.account_id},
                **sandbox_deployment_settings("wg-test-process"),
                "notifications": {key: f"custom-webhook/{name}" for key, name in blocks.items()},
            },
        )
        env = {
            "DBT2PREFECT_TENANT_FILE": str(tmp_path / "tenant.toml"),
            "DBT_CLOUD_API_TOKEN": cloud.token,
            "DBT2PREFECT_PARITY_DIR": str(tmp_path / "parity"),
            "COLUMNS": "250",
        }
        emitted = runner.invoke(app, ["emit", "--output", str(tmp_path / "p.yaml"), "--allow-blockers"], env=env)
        assert emitted.exit_code == 0, emitted.output
        assert "dbt2prefect apply --automations-only" in " ".join(emitted.stdout.split())  # however it wraps
        asyncio.run(_create_pool("wg-test-process"))  # step 2 of "Run it on Prefect Cloud"
        _prefect_deploy(tmp_path / "p.yaml")
        _pass_verdict(NIGHTLY, tmp_path / "parity")
        assert runner.invoke(app, ["cutover", "--job", str(NIGHTLY)], env=env).exit_code == 0

        missing = _status(env, exit_code=1)[NIGHTLY]["disagreement"]
        assert f"job-{NIGHTLY}-notify-" in missing and "are missing on Prefect" in missing
        assert "dbt2prefect apply --automations-only" in missing

        applied = runner.invoke(app, ["apply", "--automations-only"], env=env)
        assert applied.exit_code == 0, applied.output
        assert "Notification automations of deployment" in applied.stdout
        with connect_prefect() as prefect:
            found = {name: bool(a.enabled) for name, a in notification_automations(prefect, deployment).items()}
        assert found and {name: on for name, on in found.items() if name.startswith(f"job-{NIGHTLY}-")} == {
            name: True for name in found if name.startswith(f"job-{NIGHTLY}-")
        }, "created as the ledger says: the cut-over job's are on"
        assert not any(on for name, on in found.items() if name.startswith(f"job-{HOURLY}-"))
        assert _status(env)[NIGHTLY]["disagreement"] is None
        again = runner.invoke(app, ["apply", "--automations-only"], env=env)
        assert again.exit_code == 0 and "Nothing to change." in again.stdout


async def _create_pool(name: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=name, type="process"), overwrite=True)


CHAINED = 70403103936373
"""Chained to NIGHTLY in the sandbox account: it runs after NIGHTLY's runs."""


def _assert_fits_80_columns(text: str, job_ids: set[int]) -> None:
    """No line wider than 80 columns and every long number standing alone on a line is a whole job id (none split in
    two; digits inside a name, such as a generated deployment's, are not ids)."""
    import re

    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80, text
    numbers = {int(n) for line in lines for n in re.findall(r"(?<![\w-])\d{5,}(?![\w-])", line)}
    assert numbers <= job_ids, f"split ids: {sorted(numbers - job_ids)}\n{text}"


def _status_80(env: dict[str, str], exit_code: int) -> tuple[dict[int, dict[str, Any]], str, str]:
    rows = _status(env, exit_code)
    shown = runner.invoke(app, ["status"], env={**env, "COLUMNS": "80"})
    assert shown.exit_code == exit_code, shown.output
    _assert_fits_80_columns(shown.stdout, set(rows))
    _assert_fits_80_columns(shown.stderr, set(rows)) if shown.stderr.strip() else None
    for job_id, row in rows.items():
        assert str(job_id) in shown.stdout and row["job_name"].split()[0] in shown.stdout
    return rows, shown.stdout, shown.stderr


def test_status_says_where_each_job_runs_at_80_columns(setup: dict[str, Any], tmp_path: Path) -> None:
    from migration.ledger import Ledger
    from migration.prefect_switch import PrefectSchedules, PrefectTriggers
    from migration.rollback import rollback
    from migration.switch_context import SwitchContext

    env, cloud = setup["env"], setup["cloud"]
    rows, shown, _ = _status_80(env, 0)
    assert (rows[NIGHTLY]["runs_on"], rows[CHAINED]["runs_on"]) == ("dbt Cloud", "dbt Cloud")
    assert rows[CHAINED]["triggered_by"] == NIGHTLY and rows[CHAINED]["trigger"] == "off"
    assert rows[NIGHTLY]["next_run"] is not None and rows[CHAINED]["next_run"] is None
    assert "runs on" in shown and f"triggered by job {NIGHTLY})" in shown

    _pass_verdict(NIGHTLY, tmp_path / "parity")
    assert runner.invoke(app, ["cutover", "--job", str(NIGHTLY)], env=env).exit_code == 0
    rows, shown, _ = _status_80(env, 0)
    assert (rows[NIGHTLY]["runs_on"], rows[CHAINED]["runs_on"]) == ("Prefect", "Prefect")
    assert rows[CHAINED]["trigger"] == "on", "the chained job is triggered by NIGHTLY, not missing"
    assert rows[NIGHTLY]["next_run"] is not None

    # Its trigger switched off by hand: the chained job runs nowhere (NIGHTLY no longer runs in dbt Cloud).
    triggers = PrefectTriggers(setup["deployment"])
    (trigger,) = [name for name in triggers.after_job(NIGHTLY)]
    triggers.set_enabled(trigger, False)
    rows, _, problems = _status_80(env, 4)
    assert rows[CHAINED]["runs_on"] == "nowhere" and rows[CHAINED]["trigger"] == "off"
    assert f"job {CHAINED}:" in problems and f"dbt2prefect cutover --job {NIGHTLY}" in " ".join(problems.split())
    assert runner.invoke(app, ["cutover", "--job", str(NIGHTLY)], env=env).exit_code == 0  # switches it back on
    assert _status(env)[CHAINED]["runs_on"] == "Prefect"

    # The dbt Cloud schedule switched back on by hand: NIGHTLY (and so its chained job) runs on both sides.
    with DbtCloudClient(cloud.url, cloud.account_id, cloud.token) as client:
        job = client.get_job_dict(NIGHTLY)
        client.update_job({**job, "triggers": {**job["triggers"], "schedule": True}})
        rows, _, problems = _status_80(env, 4)
        assert (rows[NIGHTLY]["runs_on"], rows[CHAINED]["runs_on"]) == ("both", "both")
        assert "runs twice" in problems

        # A rollback that stopped half way (Prefect paused, dbt Cloud not yet restored): unfinished, exit 4.
        def crash(job_id: int, step: str) -> None:
            if step == "dbt_cloud":
                raise RuntimeError("stopped")

        tenant = load_tenant(tmp_path / "tenant.toml")
        ledger = Ledger(str(tmp_path / "ledger"), tenant.name)
        ctx = SwitchContext(tenant.name, client, PrefectSchedules(setup["deployment"]), ledger, "bob", crash)
        with pytest.raises(RuntimeError):
            rollback((NIGHTLY,), ctx)
    rows, _, problems = _status_80(env, 4)
    assert rows[NIGHTLY]["ledger_state"] == "rollback in progress"
    assert f"dbt2prefect rollback --job {NIGHTLY}" in " ".join(problems.split())
    assert runner.invoke(app, ["rollback", "--job", str(NIGHTLY)], env=env).exit_code == 0
    rows, _, _ = _status_80(env, 0)
    assert (rows[NIGHTLY]["runs_on"], rows[CHAINED]["runs_on"]) == ("dbt Cloud", "dbt Cloud")


def _everything(setup: dict[str, Any], ledger: Path) -> dict[str, Any]:
    """What a switch could change: every dbt Cloud job, the deployment's schedules and automations, the ledger."""
    from migration.prefect_switch import PrefectSchedules, PrefectTriggers

    cloud = setup["cloud"]
    with DbtCloudClient(cloud.url, cloud.account_id, cloud.token) as client:
        jobs = {job.id: client.get_job_dict(job.id) for job in client.iter_jobs(state="all")}
    schedules = PrefectSchedules(setup["deployment"]).read_all() or {}
    return {
        "dbt_cloud": jobs,
        "prefect": {slug: state.model_dump() for slug, state in schedules.items()},
        "automations": PrefectTriggers(setup["deployment"]).read_all(),
        "ledger": {str(p.relative_to(ledger)): p.read_bytes() for p in sorted(ledger.rglob("*")) if p.is_file()}
        if ledger.exists()
        else {},
    }


def test_cutover_needs_job_or_all_and_dry_runs_change_nothing(setup: dict[str, Any], tmp_path: Path) -> None:
    env, ledger = setup["env"], tmp_path / "ledger"
    for args in (["cutover"], ["cutover", "--dry-run"], ["cutover", "--job", str(NIGHTLY), "--all"]):
        bare = runner.invoke(app, args, env=env)
        assert bare.exit_code == 2 and "--job" in bare.output and "--all" in bare.output, (args, bare.output)
    _pass_verdict(NIGHTLY, tmp_path / "parity")
    before = _everything(setup, ledger)

    preview = runner.invoke(app, ["cutover", "--job", str(NIGHTLY), "--dry-run"], env={**env, "COLUMNS": "80"})
    assert preview.exit_code == 0, preview.output
    _assert_fits_80_columns(preview.stdout, set(before["dbt_cloud"]))
    text = " ".join(preview.stdout.split())
    assert "Cutover dry run: nothing changed." in text and f"job {NIGHTLY}" in text and "would cut over" in text
    assert "dbt Cloud schedule trigger: on -> off" in text
    assert f"Prefect schedule job-{NIGHTLY}--nightly-production-build: paused -> active" in text
    assert f"job-{CHAINED}-after-job-{NIGHTLY} (a job chained to this one): off -> on" in text
    assert "ledger: new cutover_started record" in text and "ledger: new cutover_verified record" in text
    assert _everything(setup, ledger) == before

    # --all: every scheduled job, gated as a real cutover would be (here forced: only NIGHTLY has a verdict).
    refused = runner.invoke(app, ["cutover", "--all", "--dry-run"], env=env)
    assert refused.exit_code == 1 and f"job {HOURLY}: has no parity verdict" in refused.output
    every = runner.invoke(app, ["cutover", "--all", "--dry-run", "--force", "--reason", "preview", "--json"], env=env)
    assert every.exit_code == 0, every.output
    report = json.loads(every.stdout)
    assert report["dry_run"] is True and {j["action"] for j in report["jobs"]} == {"would cut over"}
    assert {NIGHTLY, HOURLY} <= {j["job_id"] for j in report["jobs"]}
    assert _everything(setup, ledger) == before

    assert runner.invoke(app, ["cutover", "--job", str(NIGHTLY)], env=env).exit_code == 0
    cut = _everything(setup, ledger)
    assert cut != before
    again = runner.invoke(app, ["cutover", "--job", str(NIGHTLY), "--dry-run", "--json"], env=env)
    assert [j["action"] for j in json.loads(again.stdout)["jobs"]] == ["already cut over"]
    back = runner.invoke(app, ["rollback", "--dry-run"], env={**env, "COLUMNS": "80"})
    assert back.exit_code == 0, back.output
    _assert_fits_80_columns(back.stdout, set(before["dbt_cloud"]))
    text = " ".join(back.stdout.split())
    assert "Rollback dry run: nothing changed." in text and "would roll back" in text
    assert f"Prefect schedule job-{NIGHTLY}--nightly-production-build: active -> paused" in text
    assert "dbt Cloud schedule trigger: off -> on" in text and "ledger: new rollback_started record" in text
    assert f"job-{CHAINED}-after-job-{NIGHTLY} (a job chained to this one): on -> off" in text
    assert _everything(setup, ledger) == cut


def test_status_shows_the_shadow_streak_and_cutover_waits_for_it(unswitched: dict[str, Any], tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from parity.shadow import ShadowPair, ShadowStore
    from parity.store import ReportRoot

    env = {**unswitched["env"], "DBT2PREFECT_PARITY_DIR": str(tmp_path / "parity")}  # its verdicts, not shared
    store = ShadowStore(ReportRoot(tmp_path / "parity"))
    start = datetime(2026, 12, 1, 2, tzinfo=UTC)
    for run_id, verdict in ((1, Verdict.PASS), (2, Verdict.FAIL), (3, Verdict.PASS)):
        finished = start + timedelta(hours=12 * run_id)
        store.record(
            ShadowPair(
                tenant="dbt_williamgrant",
                job_id=HOURLY,
                dbt_cloud_run_id=run_id,
                prefect_run_id=str(uuid.uuid4()),
                verdict=verdict,
                compared_at=finished + timedelta(minutes=15),
                dbt_cloud_finished_at=finished,
                prefect_started_at=finished,
                prefect_finished_at=finished + timedelta(minutes=10),
            )
        )
    rows, shown, _ = _status_80(env, 0)
    assert rows[NIGHTLY]["readiness"] is None
    readiness = rows[HOURLY]["readiness"]
    assert (readiness["streak"], readiness["pairs"], readiness["last_fail"]["dbt_cloud_run_id"]) == (1, 3, 2)
    assert "shadow" in shown and "1/3 PASS, 0/1 days" in shown and "(last FAIL run 2)" in " ".join(shown.split())
    as_csv = runner.invoke(app, ["status", "--format", "csv"], env=env)
    csv_rows = {int(row["job_id"]): row for row in csv.DictReader(io.StringIO(as_csv.stdout))}
    assert (csv_rows[HOURLY]["shadow"], csv_rows[HOURLY]["shadow_ready"]) == ("1/3 PASS, 0/1 days", "no")
    assert csv_rows[NIGHTLY]["shadow"] == ""

    _pass_verdict(HOURLY, tmp_path / "parity")  # a one-off PASS does not outvote the pairs
    refused = runner.invoke(app, ["cutover", "--job", str(HOURLY)], env=env)
    assert refused.exit_code == 1, refused.output
    said = " ".join(refused.output.split())
    assert f"job {HOURLY}: shadow streak 1 of 3 consecutive PASS pairs" in said and "last FAIL: dbt Cloud run 2" in said
