"""The Prefect gateway's contract: the same cases against a real Prefect server and against the in-memory gateway.

Whatever a test of apply, cutover, rollback or status proves on `MemoryPrefect` holds on Prefect because both
answer these cases alike.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.schedules import CronSchedule
from prefect.events import Event
from prefect.events.actions import DoNothing
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

from dbt2prefect.prefect_gateway import ClientGateway, PrefectApiError, PrefectGateway, connect_prefect
from dbt2prefect.prefect_gateway_memory import MemoryPrefect


@dataclass
class Side:
    """One implementation under test, and how to save a notification block on it."""

    prefect: PrefectGateway
    save_block: Callable[[str], None]


def _save_real_block(name: str) -> None:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    CustomWebhookNotificationBlock(name=name, url="http://127.0.0.1:9/notify").save(name, overwrite=True)


@pytest.fixture(params=["memory", pytest.param("prefect server", marks=pytest.mark.e2e)])
def side(request: pytest.FixtureRequest) -> Iterator[Side]:
    if request.param == "memory":
        memory = MemoryPrefect()

        def save(name: str) -> None:
            memory.add_block("custom-webhook", name)

        yield Side(memory, save)
        return
    request.getfixturevalue("prefect_api")
    with connect_prefect() as prefect:
        yield Side(prefect, _save_real_block)


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


SETTINGS = {
    "entrypoint": "flows/dbt_wg_flow.py:run_dbt_wg",
    "work_pool_name": "contract-pool",
    "parameters": {"target": "prod"},
    "description": "contract",
    "parameter_openapi_schema": {"type": "object", "properties": {}},
    "enforce_parameter_schema": True,
    "pull_steps": [{"prefect.deployments.steps.set_working_directory": {"directory": "/opt/x"}}],
    "job_variables": {"env": {"A": "1"}},
}


def _schedule(slug: str, cron: str = "0 2 * * *", active: bool = False) -> DeploymentScheduleCreate:
    return DeploymentScheduleCreate(
        schedule=CronSchedule(cron=cron, timezone="UTC"), active=active, parameters={"job": slug}, slug=slug
    )


def _deployment(side: Side) -> tuple[str, uuid.UUID]:
    prefect = side.prefect
    if prefect.read_work_pool("contract-pool") is None:
        prefect.create_work_pool("contract-pool", "process")
    flow, name = _unique("contract-flow"), _unique("contract")
    deployment_id = prefect.create_deployment(flow, name, [_schedule("job-1"), _schedule("job-2")], SETTINGS)
    return f"{flow}/{name}", deployment_id


def test_a_missing_deployment_reads_as_none_and_cannot_be_updated(side: Side) -> None:
    assert side.prefect.read_deployment(f"{_unique('no-flow')}/nothing") is None
    assert side.prefect.read_schedules(uuid.uuid4()) == []
    with pytest.raises(PrefectApiError, match="404"):
        side.prefect.update_deployment(uuid.uuid4(), {"description": "x"})


def test_a_created_deployment_reads_back_with_its_settings_and_schedules(side: Side) -> None:
    full_name, deployment_id = _deployment(side)
    found = side.prefect.read_deployment(full_name)
    assert found is not None and found.id == deployment_id
    assert {key: getattr(found, key) for key in SETTINGS} == SETTINGS
    schedules = {s.slug: s for s in side.prefect.read_schedules(deployment_id)}
    assert set(schedules) == {"job-1", "job-2"}
    assert schedules["job-1"].active is False and schedules["job-1"].parameters == {"job": "job-1"}
    assert getattr(schedules["job-1"].schedule, "cron", None) == "0 2 * * *"


def test_updating_a_deployment_changes_its_settings_and_keeps_its_schedules(side: Side) -> None:
    full_name, deployment_id = _deployment(side)
    side.prefect.update_deployment(deployment_id, {"description": "changed", "parameters": {"target": "dev"}})
    found = side.prefect.read_deployment(full_name)
    assert found is not None and (found.description, found.parameters) == ("changed", {"target": "dev"})
    assert found.entrypoint == SETTINGS["entrypoint"]
    assert {s.slug for s in side.prefect.read_schedules(deployment_id)} == {"job-1", "job-2"}


def test_schedules_are_added_switched_changed_and_deleted_by_id(side: Side) -> None:
    _, deployment_id = _deployment(side)
    prefect = side.prefect
    prefect.create_schedules(deployment_id, [_schedule("job-3", cron="15 * * * *")])
    by_slug = {s.slug: s for s in prefect.read_schedules(deployment_id)}
    assert set(by_slug) == {"job-1", "job-2", "job-3"}
    prefect.update_schedule(deployment_id, by_slug["job-1"].id, active=True, parameters={"job": "job-1"}, slug="job-1")
    prefect.update_schedule(
        deployment_id, by_slug["job-2"].id, schedule=CronSchedule(cron="5 3 * * *", timezone="UTC"), parameters={}
    )
    prefect.delete_schedule(deployment_id, by_slug["job-3"].id)
    after = {s.slug: s for s in prefect.read_schedules(deployment_id)}
    assert set(after) == {"job-1", "job-2"}
    assert after["job-1"].active is True and after["job-1"].parameters == {"job": "job-1"}
    assert getattr(after["job-2"].schedule, "cron", None) == "5 3 * * *" and after["job-2"].parameters == {}
    assert after["job-2"].active is False  # an update without `active` leaves it


def test_a_slug_the_deployment_has_is_refused(side: Side) -> None:
    _, deployment_id = _deployment(side)
    with pytest.raises(PrefectApiError):
        side.prefect.create_schedules(deployment_id, [_schedule("job-1")])
    assert sorted(s.slug or "" for s in side.prefect.read_schedules(deployment_id)) == ["job-1", "job-2"]


def test_switching_a_schedule_that_does_not_exist_fails_as_an_api_error(side: Side) -> None:
    _, deployment_id = _deployment(side)
    with pytest.raises(PrefectApiError, match="404"):
        side.prefect.update_schedule(deployment_id, uuid.uuid4(), active=True, parameters={})


def _trigger(deployment_id: uuid.UUID, name: str) -> AutomationCore:
    trigger = DeploymentEventTrigger(
        name=name,
        enabled=False,
        expect={"prefect.flow-run.Completed"},
        match_related={"prefect.resource.role": "deployment", "prefect.resource.name": "upstream"},
    )
    trigger.set_deployment_id(deployment_id)
    return trigger.as_automation()


def _watcher(name: str, description: str = "") -> AutomationCore:
    return AutomationCore(
        name=name,
        description=description,
        enabled=True,
        trigger=EventTrigger(expect={"prefect.flow-run.Failed"}, posture=Posture.Reactive, threshold=1),
        actions=[DoNothing()],
    )


def test_a_deployments_trigger_is_related_to_it_and_a_watcher_is_not(side: Side) -> None:
    _, deployment_id = _deployment(side)
    _, other_id = _deployment(side)
    trigger = _unique("job-1-after-job-2")
    watcher = _unique("watcher")
    trigger_id = side.prefect.create_automation(_trigger(deployment_id, trigger))
    side.prefect.create_automation(_watcher(watcher))
    assert [a.name for a in side.prefect.read_related_automations(deployment_id)] == [trigger]
    assert side.prefect.read_related_automations(other_id) == []
    every = {a.name: a for a in side.prefect.read_automations()}
    assert every[trigger].id == trigger_id and every[trigger].enabled is False
    assert every[watcher].enabled is True


def test_an_automation_is_updated_switched_and_deleted(side: Side) -> None:
    _, deployment_id = _deployment(side)
    prefect = side.prefect
    name = _unique("job-4-after-job-5")
    automation_id = prefect.create_automation(_trigger(deployment_id, name))
    changed = _trigger(deployment_id, name).model_copy(update={"description": "new"})
    update = changed.model_dump(exclude={"owner_resource"}) | {"enabled": False}
    prefect.update_automation(automation_id, type(changed).model_validate(update))
    prefect.set_automation_enabled(automation_id, True)
    (found,) = prefect.read_related_automations(deployment_id)  # the owner is kept by the update
    assert (found.id, found.description, found.enabled) == (automation_id, "new", True)
    prefect.set_automation_enabled(automation_id, False)
    assert prefect.read_related_automations(deployment_id)[0].enabled is False
    prefect.delete_automation(automation_id)
    prefect.delete_automation(automation_id)  # gone already: no error
    assert prefect.read_related_automations(deployment_id) == []
    with pytest.raises(PrefectApiError, match="404"):
        prefect.set_automation_enabled(automation_id, True)


def test_work_pools_are_created_once(side: Side) -> None:
    prefect = side.prefect
    name = _unique("pool")
    assert prefect.read_work_pool(name) is None
    created = prefect.create_work_pool(name, "process")
    assert created is not None and (created.name, created.type) == (name, "process")
    again = prefect.create_work_pool(name, "process")  # as when another apply created it meanwhile
    assert again is not None and again.id == created.id
    found = prefect.read_work_pool(name)
    assert found is not None and found.type == "process"
    assert prefect.read_workers(name) == []


def test_a_flow_run_created_from_a_deployment_is_scheduled_until_it_starts(side: Side) -> None:
    _, deployment_id = _deployment(side)
    run = side.prefect.create_flow_run(deployment_id, parameters={"full_refresh": True})
    assert run.deployment_id == deployment_id
    assert run.parameters == {"target": "prod", "full_refresh": True}  # over the deployment's
    assert run.state is not None and run.state.name == "Scheduled" and run.start_time is None
    assert side.prefect.read_flow_runs(deployment_id) == []  # started runs only
    assert [r.id for r in side.prefect.read_flow_runs(deployment_id, started_only=False)] == [run.id]


def test_a_flow_run_is_created_with_its_name_and_tags(side: Side) -> None:
    _, deployment_id = _deployment(side)
    run = side.prefect.create_flow_run(
        deployment_id, parameters={"job": "job-7"}, name="job-7 Nightly (run-job)", tags=["dbt-cloud-job-7"]
    )
    found = side.prefect.read_flow_run(run.id)
    assert found is not None and found.name == "job-7 Nightly (run-job)"
    assert found.tags == ["dbt-cloud-job-7"]
    assert found.parameters == {"target": "prod", "job": "job-7"}
    assert found.state is not None and found.state.name == "Scheduled"


def test_a_flow_run_reads_back_is_rescheduled_and_tagged_by_id(side: Side) -> None:
    _, deployment_id = _deployment(side)
    prefect = side.prefect
    run = prefect.create_flow_run(deployment_id)
    assert prefect.read_flow_run(uuid.uuid4()) is None
    found = prefect.read_flow_run(run.id)
    assert found is not None and (found.id, found.deployment_id) == (run.id, deployment_id)
    scheduled = prefect.read_flow_runs(deployment_id, started_only=False, state_type=StateType.SCHEDULED)
    assert [r.id for r in scheduled] == [run.id]
    assert prefect.read_flow_runs(deployment_id, started_only=False, state_type=StateType.RUNNING) == []
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    prefect.reschedule_flow_run(run.id, when)
    prefect.set_flow_run_tags(run.id, ["job-7", "extra"])
    after = prefect.read_flow_run(run.id)
    assert after is not None and after.state is not None and after.state.type == StateType.SCHEDULED
    assert after.state.state_details.scheduled_time == when
    assert sorted(after.tags) == ["extra", "job-7"]
    with pytest.raises(PrefectApiError, match="404"):
        prefect.set_flow_run_tags(uuid.uuid4(), ["x"])


EARLIER = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_task_run_is_recorded_in_a_flow_run_and_ends_in_the_state_set(side: Side) -> None:
    from prefect.states import Completed, Failed, Running

    _, deployment_id = _deployment(side)
    prefect = side.prefect
    flow_run = prefect.create_flow_run(deployment_id)
    warned = prefect.create_task_run(flow_run.id, "test not_null_x", "test.p.not_null_x-1", Running())
    created = datetime.now(UTC)
    # A timestamp the state carries is not kept: the API stamps the state, and starts the task run, on receipt.
    failed = prefect.create_task_run(flow_run.id, "model x", "model.p.x-1", Running(timestamp=EARLIER))
    prefect.set_task_run_state(warned.id, Completed(name="Warned", message="test.p.not_null_x warn: Got 2 results"))
    before = datetime.now(UTC)
    prefect.set_task_run_state(failed.id, Failed(message="model.p.x error: boom", timestamp=EARLIER))
    again = prefect.create_task_run(flow_run.id, "test not_null_x", "test.p.not_null_x-1", Running())
    assert again.id == warned.id, "a key the flow run has answers its task run"
    found = {run.name: run for run in prefect.read_task_runs(flow_run.id)}
    assert sorted(found) == ["model x", "test not_null_x"]
    state = found["test not_null_x"].state
    assert state is not None and (state.type, state.name) == (StateType.COMPLETED, "Warned")
    assert state.message == "test.p.not_null_x warn: Got 2 results"
    state = found["model x"].state
    assert state is not None and (state.type, state.message) == (StateType.FAILED, "model.p.x error: boom")
    assert state.timestamp >= before, "the final state is stamped when it is set"
    start = found["model x"].start_time
    assert start is not None and created <= start <= before
    assert prefect.read_task_runs(uuid.uuid4()) == []
    with pytest.raises(PrefectApiError, match="404"):
        prefect.set_task_run_state(uuid.uuid4(), Completed())


def test_a_block_reads_with_its_capabilities(side: Side) -> None:
    name = _unique("hook")
    assert side.prefect.read_block("custom-webhook", name) is None
    side.save_block(name)
    block = side.prefect.read_block("custom-webhook", name)
    assert block is not None and "notify" in block.capabilities


def test_a_notification_is_sent_through_its_block_and_an_unknown_block_is_an_api_error(side: Side) -> None:
    from sandbox.notification_sink import NotificationSink

    name = _unique("guard-note")
    with NotificationSink.start() as sink:
        if isinstance(side.prefect, MemoryPrefect):
            side.save_block(name)
        else:
            from prefect.blocks.notifications import CustomWebhookNotificationBlock

            url = sink.destination_url("oncall")
            body = {"subject": "{{subject}}", "body": "{{body}}"}
            CustomWebhookNotificationBlock(name=name, url=url, json_data=body).save(name, overwrite=True)
        block = side.prefect.read_block("custom-webhook", name)
        assert block is not None
        side.prefect.send_notification(block.id, "job 1 failed", "rolled back")
        with pytest.raises(PrefectApiError, match="does not exist"):
            side.prefect.send_notification(uuid.uuid4(), "job 1 failed", "rolled back")
        if isinstance(side.prefect, MemoryPrefect):
            assert side.prefect.notifications == [(block.id, "job 1 failed", "rolled back")]
        else:
            assert sink.received() == [{"destination": "oncall", "subject": "job 1 failed", "body": "rolled back"}]


def test_the_gateway_answers_its_health_check(side: Side) -> None:
    assert side.prefect.healthcheck() is None
    assert side.prefect.api_url


def test_an_unreachable_api_is_a_prefect_api_error_naming_the_setting() -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}), connect_prefect() as prefect:
        with pytest.raises(PrefectApiError, match=r"cannot reach the Prefect API .*PREFECT_API_URL"):
            prefect.read_deployment("flow/deployment")
        assert prefect.healthcheck() is not None


def test_other_failures_inside_the_block_stay_what_they_are(prefect_api: None) -> None:
    with pytest.raises(OSError, match="disk full"), connect_prefect():
        raise OSError("disk full")


def _read_back(prefect: PrefectGateway, name: str, resources: list[str], count: int) -> list[Event]:
    # The server records accepted events asynchronously; the memory gateway at once.
    deadline = time.monotonic() + 30
    while len(found := prefect.read_events(name, resources)) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def test_an_event_sent_twice_with_one_id_is_stored_once(side: Side) -> None:
    prefect = side.prefect
    name, resource = _unique("contract.event"), _unique("contract.resource")
    first = Event(event=name, resource={"prefect.resource.id": resource}, payload={"n": 1}, id=uuid.uuid4())
    other = Event(event=name, resource={"prefect.resource.id": f"{resource}-other"}, id=uuid.uuid4())
    prefect.emit_events([first, other])
    prefect.emit_events([first.model_copy(update={"payload": {"n": 2}})])
    prefect.emit_events([])
    stored = _read_back(prefect, name, [resource], 1)
    assert [(e.id, e.payload) for e in stored] == [(first.id, {"n": 1})]
    assert {e.resource.id for e in _read_back(prefect, name, [resource, f"{resource}-other"], 2)} == {
        resource,
        f"{resource}-other",
    }


@pytest.mark.e2e
def test_every_automation_is_read_when_the_server_answers_them_in_pages(prefect_api: str) -> None:
    # The server answers at most a page of automations per request (200 by default): a workspace with more must
    # be read page by page, or its later automations look missing and apply creates them twice.
    names = sorted(_unique("paged") for _ in range(5))
    with connect_prefect() as prefect:
        for name in names:
            prefect.create_automation(_watcher(name))
    paged = ClientGateway(automations_page=2)
    try:
        read = paged.read_automations()
    finally:
        paged.close()
    assert [a.name for a in read if a.name in names] == names
    assert len({a.id for a in read}) == len(read), "an automation read twice"
    assert [a.name for a in read] == sorted(a.name for a in read)
