"""An in-memory `PrefectGateway`: the Prefect API's behaviour the toolkit relies on, without a server.

For tests of the logic above the gateway (apply, cutover, rollback, status). `tests/dbt2prefect/
test_prefect_gateway_contract.py` runs the same cases against it and against a real Prefect server, so what a test
proves here holds there. What it stores are Prefect's own client objects, as the API would answer them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from dbt2prefect.prefect_gateway import (
    RECORDED_TASK,
    BlockRef,
    PrefectApiError,
    checked_settings,
    deployment_resource,
)

if TYPE_CHECKING:
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.objects import DeploymentSchedule, FlowRun, State, StateType, TaskRun, Worker, WorkPool
    from prefect.client.schemas.responses import DeploymentResponse
    from prefect.events import Event
    from prefect.events.schemas.automations import Automation, AutomationCore

MEMORY_URL = "memory://prefect/api"


def _refused(method: str, path: str, status: int, detail: str) -> PrefectApiError:
    return PrefectApiError(f"Prefect API {method} {path} answered {status}: {detail}")


class MemoryPrefect:
    """A `PrefectGateway` whose workspace lives in this object (one per test).

    Args:
        pool_types: the work pool types it can create (default: any, as a self-hosted server); pass a list to
            stand for an API that cannot create some (Prefect Cloud's plans).
    """

    def __init__(self, pool_types: Collection[str] | None = None) -> None:
        self.pool_types = None if pool_types is None else set(pool_types)
        self.flows: dict[str, UUID] = {}
        self.deployments: dict[UUID, DeploymentResponse] = {}
        self.schedules: dict[UUID, list[DeploymentSchedule]] = {}
        self.automations: dict[UUID, Automation] = {}
        self.work_pools: dict[str, WorkPool] = {}
        self.workers: dict[str, list[Worker]] = {}
        self.flow_runs: list[FlowRun] = []
        self.task_runs: list[TaskRun] = []
        self.blocks: dict[tuple[str, str], BlockRef] = {}
        self.events: dict[UUID, Event] = {}
        self.sent_events = 0
        """Every event sent, repeats included (`events` keeps one per id, as the server does)."""
        self.notifications: list[tuple[UUID, str, str]] = []
        """What `send_notification` sent: (block document id, subject, body)."""

    def __repr__(self) -> str:
        return f"MemoryPrefect(deployments={len(self.deployments)}, automations={len(self.automations)})"

    @property
    def api_url(self) -> str:
        return MEMORY_URL

    def healthcheck(self) -> Exception | None:
        return None

    def for_thread(self) -> AbstractContextManager[MemoryPrefect]:
        return nullcontext(self)  # one workspace in this object: threads share it

    # deployments
    def _deployment_id(self, full_name: str) -> UUID | None:
        flow, _, name = full_name.partition("/")
        flow_id = self.flows.get(flow)
        for deployment in self.deployments.values():
            if deployment.name == name and deployment.flow_id == flow_id:
                return deployment.id
        return None

    def _known(self, method: str, deployment_id: UUID, path: str = "") -> None:
        if deployment_id not in self.deployments:
            raise _refused(method, f"/deployments/{deployment_id}{path}", 404, "Deployment not found.")

    def read_deployment(self, full_name: str) -> DeploymentResponse | None:
        deployment_id = self._deployment_id(full_name)
        if deployment_id is None:
            return None
        return self.deployments[deployment_id].model_copy(update={"schedules": list(self.schedules[deployment_id])})

    def create_deployment(
        self,
        flow_name: str,
        name: str,
        schedules: Sequence[DeploymentScheduleCreate],
        settings: Mapping[str, Any],
    ) -> UUID:
        from prefect.client.schemas.responses import DeploymentResponse

        flow_id = self.flows.setdefault(flow_name, uuid4())
        existing = self._deployment_id(f"{flow_name}/{name}")
        deployment_id = existing or uuid4()  # the API upserts by name, replacing the schedules
        self.deployments[deployment_id] = DeploymentResponse(
            id=deployment_id, name=name, flow_id=flow_id, **checked_settings(settings)
        )
        self.schedules[deployment_id] = []
        self.create_schedules(deployment_id, schedules)
        return deployment_id

    def update_deployment(self, deployment_id: UUID, settings: Mapping[str, Any]) -> None:
        self._known("PATCH", deployment_id)
        current = self.deployments[deployment_id]
        self.deployments[deployment_id] = current.model_copy(update=checked_settings(settings))

    # schedules
    def read_schedules(self, deployment_id: UUID) -> list[DeploymentSchedule]:
        return [s.model_copy() for s in self.schedules.get(deployment_id, [])]

    def create_schedules(self, deployment_id: UUID, schedules: Sequence[DeploymentScheduleCreate]) -> None:
        from prefect.client.schemas.objects import DeploymentSchedule

        self._known("POST", deployment_id, "/schedules")
        current = self.schedules[deployment_id]
        slugs = {s.slug for s in current if s.slug}
        for create in schedules:
            if create.slug and create.slug in slugs:
                raise _refused(
                    "POST", f"/deployments/{deployment_id}/schedules", 409, f"slug {create.slug!r} already exists"
                )
            if create.slug:
                slugs.add(create.slug)
        for create in schedules:
            current.append(
                DeploymentSchedule(
                    id=uuid4(),
                    deployment_id=deployment_id,
                    schedule=create.schedule,
                    active=create.active if create.active is not None else True,
                    parameters=dict(create.parameters or {}),
                    slug=create.slug,
                    max_scheduled_runs=create.max_scheduled_runs,
                )
            )

    def _schedule_index(self, method: str, deployment_id: UUID, schedule_id: UUID) -> int:
        path = f"/deployments/{deployment_id}/schedules/{schedule_id}"
        for index, schedule in enumerate(self.schedules.get(deployment_id, [])):
            if schedule.id == schedule_id:
                return index
        raise _refused(method, path, 404, "Schedule not found.")

    def update_schedule(
        self,
        deployment_id: UUID,
        schedule_id: UUID,
        *,
        parameters: dict[str, Any],
        active: bool | None = None,
        schedule: Any = None,
        slug: str | None = None,
    ) -> None:
        index = self._schedule_index("PATCH", deployment_id, schedule_id)
        update: dict[str, Any] = {"parameters": dict(parameters)}
        for key, value in (("active", active), ("schedule", schedule), ("slug", slug)):
            if value is not None:
                update[key] = value
        current = self.schedules[deployment_id]
        current[index] = current[index].model_copy(update=update)

    def delete_schedule(self, deployment_id: UUID, schedule_id: UUID) -> None:
        index = self._schedule_index("DELETE", deployment_id, schedule_id)
        del self.schedules[deployment_id][index]

    # automations
    def read_automations(self) -> list[Automation]:
        return sorted((a.model_copy() for a in self.automations.values()), key=lambda a: a.name)

    def read_related_automations(self, deployment_id: UUID) -> list[Automation]:
        resource = deployment_resource(deployment_id)
        return [a for a in self.read_automations() if _related(a, resource, deployment_id)]

    def create_automation(self, automation: AutomationCore) -> UUID:
        from prefect.events.schemas.automations import Automation

        automation_id = uuid4()
        self.automations[automation_id] = Automation.model_validate(
            {**automation.model_dump(mode="json"), "id": str(automation_id)}
        )
        return automation_id

    def _automation(self, method: str, automation_id: UUID) -> Automation:
        found = self.automations.get(automation_id)
        if found is None:
            raise _refused(method, f"/automations/{automation_id}", 404, "Automation not found.")
        return found

    def update_automation(self, automation_id: UUID, automation: AutomationCore) -> None:
        from prefect.events.schemas.automations import Automation

        current = self._automation("PUT", automation_id)
        body = automation.model_dump(mode="json", exclude_unset=True)
        body.pop("owner_resource", None)  # an update does not change the owner
        self.automations[automation_id] = Automation.model_validate({**current.model_dump(mode="json"), **body})

    def set_automation_enabled(self, automation_id: UUID, enabled: bool) -> None:
        current = self._automation("PATCH", automation_id)
        self.automations[automation_id] = current.model_copy(update={"enabled": enabled})

    def delete_automation(self, automation_id: UUID) -> None:
        self.automations.pop(automation_id, None)

    # work pools
    def read_work_pool(self, name: str) -> WorkPool | None:
        return self.work_pools.get(name)

    def create_work_pool(self, name: str, pool_type: str) -> WorkPool | None:
        from prefect.client.schemas.objects import WorkPool

        if self.pool_types is not None and pool_type not in self.pool_types:
            return None
        if name not in self.work_pools:
            self.work_pools[name] = WorkPool(id=uuid4(), name=name, type=pool_type, default_queue_id=uuid4())
        return self.work_pools[name]

    def read_workers(self, pool_name: str) -> list[Worker]:
        if pool_name not in self.work_pools:
            raise _refused("POST", f"/work_pools/{pool_name}/workers/filter", 404, "Work pool not found.")
        return list(self.workers.get(pool_name, []))

    # flow runs
    def _run_index(self, method: str, flow_run_id: UUID, path: str = "") -> int:
        for index, run in enumerate(self.flow_runs):
            if run.id == flow_run_id:
                return index
        raise _refused(method, f"/flow_runs/{flow_run_id}{path}", 404, "Flow run not found")

    def read_flow_run(self, flow_run_id: UUID) -> FlowRun | None:
        return next((r.model_copy() for r in self.flow_runs if r.id == flow_run_id), None)

    def read_flow_runs(
        self,
        deployment_id: UUID,
        *,
        started_only: bool = True,
        state_type: StateType | None = None,
        limit: int = 200,
    ) -> list[FlowRun]:
        runs = [r for r in self.flow_runs if r.deployment_id == deployment_id]
        if started_only:
            runs = [r for r in runs if r.start_time is not None]
        if state_type is not None:
            runs = [r for r in runs if r.state is not None and r.state.type == state_type]
        started = sorted((r for r in runs if r.start_time is not None), key=_start_time, reverse=True)
        return [*started, *(r for r in runs if r.start_time is None)][:limit]

    def create_flow_run(
        self,
        deployment_id: UUID,
        parameters: dict[str, Any] | None = None,
        *,
        name: str | None = None,
        tags: Sequence[str] = (),
    ) -> FlowRun:
        from prefect.client.schemas.objects import FlowRun
        from prefect.states import Scheduled

        self._known("POST", deployment_id, "/create_flow_run")
        deployment = self.deployments[deployment_id]
        run = FlowRun(
            id=uuid4(),
            name=name or f"run-{len(self.flow_runs) + 1}",
            flow_id=deployment.flow_id,
            deployment_id=deployment_id,
            parameters={**(deployment.parameters or {}), **(parameters or {})},
            tags=sorted({*(deployment.tags or []), *tags}),
            state=Scheduled(),
        )
        self.flow_runs.append(run)
        return run

    def reschedule_flow_run(self, flow_run_id: UUID, scheduled_time: datetime) -> None:
        from prefect.states import Scheduled

        index = self._run_index("POST", flow_run_id, "/set_state")
        self.flow_runs[index] = self.flow_runs[index].model_copy(
            update={"state": Scheduled(scheduled_time=scheduled_time), "next_scheduled_start_time": scheduled_time}
        )

    def set_flow_run_tags(self, flow_run_id: UUID, tags: Sequence[str]) -> None:
        index = self._run_index("PATCH", flow_run_id)
        self.flow_runs[index] = self.flow_runs[index].model_copy(update={"tags": list(tags)})

    def start_flow_run(self, run_id: UUID, start_time: datetime, state: str = "Completed") -> FlowRun:
        """Mark a run as started at `start_time` and now in state `state` (what a worker would do)."""
        from prefect.client.schemas.objects import State, StateType

        for index, run in enumerate(self.flow_runs):
            if run.id == run_id:
                kind = StateType[state.upper()] if state.upper() in StateType.__members__ else StateType.FAILED
                updated = run.model_copy(update={"start_time": start_time, "state": State(type=kind, name=state)})
                self.flow_runs[index] = updated
                return updated
        raise KeyError(run_id)

    # task runs
    def create_task_run(self, flow_run_id: UUID, name: str, key: str, state: State[Any]) -> TaskRun:
        from prefect.client.schemas.objects import TaskRun

        for run in self.task_runs:
            if run.flow_run_id == flow_run_id and run.dynamic_key == key:
                return run.model_copy()
        received = _received(state)
        run = TaskRun(
            id=uuid4(),
            name=name,
            flow_run_id=flow_run_id,
            task_key=RECORDED_TASK,
            dynamic_key=key,
            state=received,
            start_time=received.timestamp if received.is_running() else None,
        )
        self.task_runs.append(run)
        return run.model_copy()

    def set_task_run_state(self, task_run_id: UUID, state: State[Any]) -> None:
        for index, run in enumerate(self.task_runs):
            if run.id == task_run_id:
                self.task_runs[index] = run.model_copy(update={"state": _received(state)})
                return
        raise _refused("POST", f"/task_runs/{task_run_id}/set_state", 404, "Task run not found")

    def read_task_runs(self, flow_run_id: UUID) -> list[TaskRun]:
        return [run.model_copy() for run in self.task_runs if run.flow_run_id == flow_run_id]

    # blocks
    # events
    def emit_events(self, events: Sequence[Event]) -> None:
        for event in events:
            self.sent_events += 1
            self.events.setdefault(event.id, event.model_copy(deep=True))

    def read_events(self, name: str, resource_ids: Sequence[str] | None = None, *, limit: int = 200) -> list[Event]:
        found = [
            event
            for event in self.events.values()
            if event.event == name and (resource_ids is None or event.resource.id in resource_ids)
        ]
        return sorted(found, key=lambda event: event.occurred)[:limit]

    def read_block(self, block_type_slug: str, name: str) -> BlockRef | None:
        return self.blocks.get((block_type_slug, name))

    def send_notification(self, block_document_id: UUID, subject: str, body: str) -> None:
        block = next((b for b in self.blocks.values() if b.id == block_document_id), None)
        if block is None:
            raise PrefectApiError(
                f"notification block document {block_document_id} does not exist; run `dbt2prefect apply`"
            )
        if "notify" not in block.capabilities:
            raise PrefectApiError(f"block document {block_document_id} cannot send notifications")
        self.notifications.append((block_document_id, subject, body))

    def add_block(self, block_type_slug: str, name: str, capabilities: Sequence[str] = ("notify",)) -> BlockRef:
        """Save a block document `<block_type_slug>/<name>` whose type has `capabilities`."""
        block = BlockRef(id=uuid4(), capabilities=tuple(capabilities))
        self.blocks[(block_type_slug, name)] = block
        return block


def _start_time(run: FlowRun) -> datetime:
    assert run.start_time is not None
    return run.start_time


def _related(automation: Automation, resource: str, deployment_id: UUID) -> bool:
    """As the API relates automations to a deployment: it owns them, or they run it (a selected deployment)."""
    if automation.owner_resource == resource:
        return True
    for action in automation.actions:
        body = action.model_dump(mode="json")
        runs_it = body.get("type") == "run-deployment" and body.get("source") == "selected"
        if runs_it and body.get("deployment_id") == str(deployment_id):
            return True
    return False


def _received(state: State[Any]) -> State[Any]:
    """A state as the server stores it: stamped with the time it was received, whatever timestamp it carried."""
    return state.model_copy(update={"timestamp": datetime.now(UTC)})
