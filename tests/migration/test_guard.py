"""The guarded window after cutover: the decision on every branch (pure), and the action on the in-memory Prefect
gateway with the sandbox dbt Cloud server (real HTTP): ledger record, rollback by the guard, notifications, once
per run."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.workspace import Workspace
from dbt2prefect.dbt_cloud import RunStatus
from dbt2prefect.errors import ParameterError
from dbt2prefect.names import job_parameters
from dbt2prefect.prefect_gateway_memory import MemoryPrefect
from dbt2prefect.tenant import ShadowSettings, TenantSettings, load_tenant
from migration.apply import apply_deployment, flow_parameter_schema
from migration.guard import GUARD_BY, GuardFacts, decide, parse_run_id
from migration.ledger import LedgerRecord, LedgerState, RecordKind
from parity.model import Verdict
from sandbox.dbt_cloud import SandboxDbtCloud
from sandbox.stack import on_process_pool
from tests.migration.test_cutover_faults import write_verdicts

NIGHTLY = 70403103936332
HOURLY = 70403103936340
BLOCKS = {
    "slack:#data-alerts": "custom-webhook/guard-slack",
    "email:data-oncall@williamgrant.example": "custom-webhook/guard-email",
}
CUT = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)


# ----------------------------------------------------------------------------------------- the decision (pure)


def facts(**changes: Any) -> GuardFacts:
    """A failed run, the second after the job's cutover, dbt Cloud's last five runs all succeeded."""
    base = GuardFacts(
        run_id="run-1",
        state="FAILED",
        job_id=NIGHTLY,
        parity_run=False,
        ledger_state=LedgerState.CUT_OVER,
        cut_over_at=CUT,
        run_started=CUT + timedelta(days=1),
        run_number=2,
        dbt_cloud_failed=(False,) * 5,
        tripped=None,
        rollback_open=False,
        settings=ShadowSettings(guarded_runs=5, guard_action="rollback"),
    )
    return replace(base, **changes)


def record() -> LedgerRecord:
    return LedgerRecord(
        tenant="t", job_id=NIGHTLY, seq=3, kind=RecordKind.GUARD_TRIPPED, operation="guard-x", at=CUT, by=GUARD_BY
    )


def test_a_new_failure_in_the_window_is_acted_on_as_the_setting_says() -> None:
    rollback = decide(facts())
    assert rollback.action == "rollback"
    assert "run 2 of 5" in rollback.reason and "last 5 run(s)" in rollback.reason and "Failed" in rollback.reason
    assert decide(facts(settings=ShadowSettings(guarded_runs=5))).action == "notify"  # the default action
    assert decide(facts(state="CRASHED")).action == "rollback"
    assert decide(facts(run_number=5)).action == "rollback"  # the last guarded run
    no_history = decide(facts(dbt_cloud_failed=()))
    assert no_history.action == "rollback" and "no finished run" in no_history.reason


@pytest.mark.parametrize(
    ("changes", "because"),
    [
        ({"state": "COMPLETED"}, "ended Completed"),
        ({"state": "CANCELLED"}, "ended Cancelled"),
        ({"job_id": None}, "runs no dbt Cloud job"),
        ({"parity_run": True}, "parity run"),
        ({"ledger_state": LedgerState.ROLLED_BACK}, "not cut over (ledger: rolled back)"),
        ({"ledger_state": LedgerState.NONE, "cut_over_at": None}, "not cut over"),
        ({"run_started": CUT - timedelta(minutes=1)}, "started before its cutover"),
        ({"run_number": 6}, "run 6 of job"),
        ({"run_number": None}, "too many to count"),
        ({"settings": ShadowSettings(guarded_runs=0, guard_action="rollback")}, "guarded_runs = 0"),
        ({"dbt_cloud_failed": (False, True, False, False, False)}, "1 of dbt Cloud's last 5"),
        ({"tripped": record()}, "handled already (ledger record 3)"),
    ],
)
def test_the_guard_leaves_alone(changes: dict[str, Any], because: str) -> None:
    decision = decide(facts(**changes))
    assert decision.action == "none"
    assert because in decision.reason


def test_an_unfinished_rollback_of_the_guard_is_resumed() -> None:
    assert decide(facts(tripped=record(), rollback_open=True)).action == "resume rollback"


def test_run_ids_are_read_from_ids_and_event_resources() -> None:
    run = uuid.uuid4()
    assert parse_run_id(str(run)) == run
    assert parse_run_id(f"prefect.flow-run.{run}") == run
    with pytest.raises(ParameterError, match="flow_run_id 'nope' is not a flow run id"):
        parse_run_id("nope")


def test_the_settings_refuse_what_they_cannot_mean() -> None:
    with pytest.raises(ValueError, match="guard_action"):
        ShadowSettings.model_validate({"guard_action": "panic"})
    with pytest.raises(ValueError, match="guarded_runs"):
        ShadowSettings.model_validate({"guarded_runs": -1})
    assert ShadowSettings().guard_action == "notify" and ShadowSettings().guarded_runs == 5


# ----------------------------------------------------------------------------------------- the action


@dataclass
class Guarded:
    cloud: SandboxDbtCloud
    tenant: TenantSettings
    gateway: MemoryPrefect
    workspace: Workspace

    @property
    def deployment_id(self) -> uuid.UUID:
        deployment = self.gateway.read_deployment(f"{self.tenant.flow_name}/{self.tenant.deployment_name}")
        assert deployment is not None
        return deployment.id

    def run(self, state: str, job_id: int = NIGHTLY, *, after: timedelta = timedelta(minutes=1), **extra: Any) -> str:
        """A run of the job's schedule, started `after` the cutover and now in `state`."""
        started = self.workspace.ledger.records(job_id)[-1].at + after
        run = self.gateway.create_flow_run(self.deployment_id, {**job_parameters(job_id, "nightly"), **extra})
        self.gateway.start_flow_run(run.id, started, state)
        return str(run.id)

    def guard(self, run_id: str, **settings: Any) -> Any:
        if settings:
            self.workspace.tenant = self.tenant.model_copy(update={"shadow": ShadowSettings.model_validate(settings)})
        return self.workspace.guard(run_id)

    def kinds(self, job_id: int = NIGHTLY) -> list[str]:
        return [r.kind.value for r in self.workspace.ledger.records(job_id)]


def dbt_cloud_history(cloud: SandboxDbtCloud, job_id: int, statuses: list[RunStatus]) -> None:
    """Finished dbt Cloud runs of the job, oldest first."""
    for status in statuses:
        cloud.app.state.add_run_record(job_id, int(status))


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Guarded]:
    """The sandbox account applied to an in-memory Prefect (with the jobs' notification automations), and
    NIGHTLY cut over after five successful dbt Cloud runs of it."""
    with SandboxDbtCloud.start() as cloud:
        base = load_tenant()
        tenant = on_process_pool(
            base,
            "wg-test-process",
            deployment_name=f"dbt_wg_guard_{uuid.uuid4().hex[:8]}",
            ledger_url=str(tmp_path / "ledger"),
            notifications=BLOCKS,
            dbt_cloud=base.dbt_cloud.model_copy(update={"host": cloud.url, "account_id": cloud.account_id}),
        )
        gateway = MemoryPrefect()
        for reference in BLOCKS.values():
            gateway.add_block(*reference.split("/", 1))
        dbt_cloud_history(cloud, NIGHTLY, [RunStatus.SUCCESS] * 5)
        dbt_cloud_history(cloud, HOURLY, [RunStatus.SUCCESS, RunStatus.ERROR, RunStatus.SUCCESS])
        with Workspace(tenant, token=cloud.token, report_dir=tmp_path / "parity", prefect=gateway) as workspace:
            spec = workspace.deployment(workspace.plan())
            schema = flow_parameter_schema(tenant.entrypoint)
            apply_deployment(spec, create_pool=True, parameter_schema=schema, prefect=gateway)
            write_verdicts(tmp_path / "parity", dict.fromkeys((NIGHTLY, HOURLY), Verdict.PASS))
            report = workspace.cutover([NIGHTLY, HOURLY], by="oncall@test")
            assert report.ok
            yield Guarded(cloud, tenant, gateway, workspace)


def test_rollback_mode_rolls_the_job_back_records_the_run_and_notifies_once(guarded: Guarded) -> None:
    run_id = guarded.run("Failed")
    outcome = guarded.guard(run_id, guard_action="rollback")
    assert outcome.decision.action == "rollback" and outcome.job_id == NIGHTLY
    assert guarded.kinds() == [
        "cutover_started",
        "cutover_verified",
        "guard_tripped",
        "rollback_started",
        "rollback_verified",
    ]
    tripped, started, verified = guarded.workspace.ledger.records(NIGHTLY)[2:]
    assert tripped.guard_run == run_id and tripped.by == GUARD_BY and tripped.guard_action == "rollback"
    assert tripped.reason is not None and "run 1 of 5" in tripped.reason
    assert started.by == verified.by == GUARD_BY
    assert guarded.workspace.ledger.state(NIGHTLY) == LedgerState.ROLLED_BACK
    assert guarded.cloud.app.state.jobs[NIGHTLY]["triggers"]["schedule"] is True
    schedule = guarded.workspace.prefect.read(f"job-{NIGHTLY}")
    assert schedule is not None and not schedule.active
    assert guarded.workspace.ledger.state(HOURLY) == LedgerState.CUT_OVER  # only the failed run's job
    blocks = {ref.id for ref in guarded.gateway.blocks.values()}
    assert {block for block, _, _ in guarded.gateway.notifications} == blocks  # each destination of the job once
    assert len(guarded.gateway.notifications) == 2
    _, subject, body = guarded.gateway.notifications[0]
    assert str(NIGHTLY) in subject and run_id in body and "rolled back" in body
    # A second event of the same run: nothing more.
    again = guarded.guard(run_id)
    assert again.decision.action == "none" and "handled already" in again.decision.reason
    assert len(guarded.kinds()) == 5 and len(guarded.gateway.notifications) == 2


def test_notify_mode_tells_the_destinations_and_leaves_the_job_cut_over(guarded: Guarded) -> None:
    run_id = guarded.run("Crashed")
    outcome = guarded.guard(run_id)  # the default: notify
    assert outcome.decision.action == "notify" and outcome.rollback is None
    assert guarded.kinds()[-1] == "guard_tripped"
    assert guarded.workspace.ledger.state(NIGHTLY) == LedgerState.CUT_OVER
    assert guarded.cloud.app.state.jobs[NIGHTLY]["triggers"]["schedule"] is False
    assert len(guarded.gateway.notifications) == 2
    assert f"dbt2prefect rollback --job {NIGHTLY}" in guarded.gateway.notifications[0][2]
    assert guarded.guard(run_id).decision.action == "none"
    assert len(guarded.gateway.notifications) == 2 and guarded.kinds().count("guard_tripped") == 1


def test_a_failure_dbt_cloud_had_too_is_not_new(guarded: Guarded) -> None:
    outcome = guarded.guard(guarded.run("Failed", HOURLY), guard_action="rollback")
    assert outcome.decision.action == "none" and "1 of dbt Cloud's last 3" in outcome.decision.reason
    assert guarded.kinds(HOURLY) == ["cutover_started", "cutover_verified"]
    assert guarded.gateway.notifications == []


def test_runs_after_the_first_n_are_not_watched(guarded: Guarded) -> None:
    for minute in range(1, 3):
        guarded.run("Completed", after=timedelta(minutes=minute))
    guarded.run("Completed", HOURLY, after=timedelta(minutes=3))  # another job's run
    third = guarded.run("Failed", after=timedelta(minutes=4))
    outcome = guarded.guard(third, guarded_runs=2, guard_action="rollback")
    assert outcome.decision.action == "none" and "run 3 of job" in outcome.decision.reason
    assert guarded.workspace.ledger.state(NIGHTLY) == LedgerState.CUT_OVER
    assert guarded.guard(third, guarded_runs=3, guard_action="rollback").decision.action == "rollback"


def test_parity_runs_and_successful_runs_are_left_alone(guarded: Guarded) -> None:
    parity = guarded.run("Failed", parity_candidate=True)
    assert "parity run" in guarded.guard(parity, guard_action="rollback").decision.reason
    assert "ended Completed" in guarded.guard(guarded.run("Completed")).decision.reason
    assert guarded.kinds() == ["cutover_started", "cutover_verified"]


def test_an_interrupted_rollback_of_the_guard_is_finished_by_the_next_event(guarded: Guarded) -> None:
    run_id = guarded.run("Failed")
    ctx = guarded.workspace.switch_context(GUARD_BY)

    def crash(job_id: int, step: str) -> None:
        if step == "dbt_cloud":
            raise RuntimeError("killed")

    from migration.guard import guard_failed_run

    ctx.checkpoint = crash
    settings = ShadowSettings(guard_action="rollback")
    with pytest.raises(RuntimeError, match="killed"):
        guard_failed_run(run_id, ctx, settings)
    assert guarded.workspace.ledger.state(NIGHTLY) == LedgerState.ROLLBACK_IN_PROGRESS
    outcome = guarded.guard(run_id, guard_action="rollback")
    assert outcome.decision.action == "resume rollback"
    assert guarded.workspace.ledger.state(NIGHTLY) == LedgerState.ROLLED_BACK
    assert guarded.kinds().count("guard_tripped") == 1


def test_an_unknown_run_is_bad_input(guarded: Guarded) -> None:
    with pytest.raises(ParameterError, match="does not exist"):
        guarded.guard(str(uuid.uuid4()))


def test_the_guard_deployment_and_its_triggers_are_applied_and_switched_with_cutover(guarded: Guarded) -> None:
    from migration.prefect_switch import PrefectTriggers

    spec = guarded.workspace.deployment(guarded.workspace.plan())
    assert not guarded.workspace.apply(spec, dry_run=True).has_changes  # a second apply changes nothing
    name = f"guard/{guarded.tenant.deployment_name}-guard"
    guard = guarded.gateway.read_deployment(name)
    assert (
        guard is not None
        and guard.entrypoint == "flows/guard_flow.py:guard"
        and not guarded.gateway.schedules.get(guard.id)
    )
    (automation,) = [a for a in guarded.gateway.read_related_automations(guard.id) if a.name == f"job-{NIGHTLY}-guard"]
    trigger = automation.trigger.model_dump(mode="json")
    assert set(trigger["expect"]) == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}
    assert trigger["match"]["prefect.resource.name"] == f"job-{NIGHTLY} *"
    (action,) = [a.model_dump(mode="json") for a in automation.actions]
    assert action["deployment_id"] == str(guard.id)
    assert action["parameters"] == {"flow_run_id": "{{ event.resource.id }}"}
    triggers = PrefectTriggers(f"{guarded.tenant.flow_name}/{guarded.tenant.deployment_name}", guarded.gateway)
    assert triggers.guard_of(NIGHTLY) == {f"job-{NIGHTLY}-guard": True}  # on with the cutover
    guarded.guard(guarded.run("Failed"), guard_action="rollback")
    assert triggers.guard_of(NIGHTLY) == {f"job-{NIGHTLY}-guard": False}  # off with the rollback
    assert triggers.guard_of(HOURLY) == {f"job-{HOURLY}-guard": True}


def test_status_shows_each_jobs_guard_trigger_on_while_cut_over_and_off_after_the_guards_rollback(
    guarded: Guarded,
) -> None:
    from cli.cutover_cmd import _automations

    before = {row.job_id: row for row in guarded.workspace.status().jobs}
    assert (before[NIGHTLY].guard, before[HOURLY].guard) == ("on", "on")
    assert "guard on" in _automations(before[NIGHTLY])
    guarded.guard(guarded.run("Failed"), guard_action="rollback")
    after = {row.job_id: row for row in guarded.workspace.status().jobs}
    assert (after[NIGHTLY].guard, after[HOURLY].guard) == ("off", "on")
    assert "guard off" in _automations(after[NIGHTLY])
    assert all(row.guard is None for row in guarded.workspace.status(automations=False).jobs)
