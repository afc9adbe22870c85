"""The one way the toolkit talks to the Prefect API: `PrefectGateway`, what migration needs of it.

`connect_prefect()` opens the real gateway: one Prefect client (Prefect's synchronous client, so no event loop)
kept for the whole command, whatever number of reads and switches it makes. `prefect_gateway_memory` holds an
in-memory gateway with the same behaviour, for tests of the logic above it; the contract test runs the same
cases against both.

Values are Prefect's own client objects (deployments, schedules, automations, work pools, flow runs), so code
above the gateway reads them as it would read the API's answers. A missing object is None, not an exception;
every failure of the API is a `PrefectApiError` naming the request.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

import httpx

from dbt2prefect.errors import ExternalServiceError

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.objects import DeploymentSchedule, FlowRun, State, StateType, TaskRun, Worker, WorkPool
    from prefect.client.schemas.responses import DeploymentResponse
    from prefect.events import Event
    from prefect.events.schemas.automations import Automation, AutomationCore


class PrefectApiError(ExternalServiceError):
    """The Prefect API refused or failed a request, or cannot be reached."""


@dataclass(frozen=True)
class BlockRef:
    """A block document, as far as the toolkit reads one: its id and what its type can do (e.g. "notify")."""

    id: UUID
    capabilities: tuple[str, ...]


DEPLOYMENT_SETTINGS = (
    "entrypoint",
    "work_pool_name",
    "parameters",
    "description",
    "parameter_openapi_schema",
    "enforce_parameter_schema",
    "pull_steps",
    "job_variables",
)
"""The deployment fields `create_deployment` and `update_deployment` accept in `settings`."""


EVENTS_PAGE = 50
"""The most events the API answers in one page (`read_events` reads on to the next pages)."""

AUTOMATIONS_PAGE = 200
"""The most automations the API answers in one request (the server's default and largest `limit`): a workspace
with more is read page by page, or its later automations would look missing and be created twice."""


TASK_RUNS_PAGE = 200
"""The most task runs the API answers in one request (`read_task_runs` reads on to the next pages)."""

RECORDED_TASK = "dbt node"
"""The task of the task runs `create_task_run` makes (the UI shows each under its own name)."""


def _recorded_task() -> None:
    """The task of a task run recorded after the fact (never called: its key is derived from it)."""


def deployment_resource(deployment_id: UUID) -> str:
    """The event resource id of a deployment (what its triggers and related automations name)."""
    return f"prefect.deployment.{deployment_id}"


class PrefectGateway(Protocol):
    """What the toolkit reads and writes on the Prefect API.

    Deployments are addressed by full name (`<flow>/<deployment>`) or id; schedules by their deployment and id;
    automations by id. Reads of something missing answer None (or an empty list).
    """

    @property
    def api_url(self) -> str:
        """The API this gateway talks to (for messages)."""
        ...

    def healthcheck(self) -> Exception | None:
        """None when the API answers, else what went wrong."""
        ...

    def for_thread(self) -> AbstractContextManager[PrefectGateway]:
        """A gateway to the same API for another thread to use while this one is in use (closed with the block)."""
        ...

    # deployments
    def read_deployment(self, full_name: str) -> DeploymentResponse | None:
        """The deployment `<flow>/<deployment>`, or None."""
        ...

    def create_deployment(
        self,
        flow_name: str,
        name: str,
        schedules: Sequence[DeploymentScheduleCreate],
        settings: Mapping[str, Any],
    ) -> UUID:
        """Create the deployment (and its flow when missing) with its schedules; settings: `DEPLOYMENT_SETTINGS`."""
        ...

    def update_deployment(self, deployment_id: UUID, settings: Mapping[str, Any]) -> None:
        """Set the given `DEPLOYMENT_SETTINGS` of the deployment; schedules and triggers are left alone."""
        ...

    # schedules
    def read_schedules(self, deployment_id: UUID) -> list[DeploymentSchedule]:
        """The deployment's schedules (empty when it does not exist)."""
        ...

    def create_schedules(self, deployment_id: UUID, schedules: Sequence[DeploymentScheduleCreate]) -> None:
        """Add schedules to the deployment (a slug the deployment already has is refused)."""
        ...

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
        """Change one schedule. The parameters are always sent: Prefect 3.9 resets them to {} when an update
        carries `active` without them."""
        ...

    def delete_schedule(self, deployment_id: UUID, schedule_id: UUID) -> None:
        """Delete one schedule."""
        ...

    # automations
    def read_automations(self) -> list[Automation]:
        """Every automation of the workspace."""
        ...

    def read_related_automations(self, deployment_id: UUID) -> list[Automation]:
        """The automations the deployment owns or that run it (the API does not say which)."""
        ...

    def create_automation(self, automation: AutomationCore) -> UUID:
        """Create an automation; its id."""
        ...

    def update_automation(self, automation_id: UUID, automation: AutomationCore) -> None:
        """Replace an automation's definition with the fields set in `automation` (its owner is kept)."""
        ...

    def set_automation_enabled(self, automation_id: UUID, enabled: bool) -> None:
        """Enable or disable an automation."""
        ...

    def delete_automation(self, automation_id: UUID) -> None:
        """Delete an automation; one already gone is no error (another process deleted it)."""
        ...

    # work pools
    def read_work_pool(self, name: str) -> WorkPool | None:
        """The work pool, or None."""
        ...

    def create_work_pool(self, name: str, pool_type: str) -> WorkPool | None:
        """Create a work pool; the existing one when another process created it meanwhile, None when this API
        cannot create pools of that type (e.g. `prefect:managed` outside Prefect Cloud)."""
        ...

    def read_workers(self, pool_name: str) -> list[Worker]:
        """The workers that polled the pool."""
        ...

    # flow runs
    def read_flow_run(self, flow_run_id: UUID) -> FlowRun | None:
        """The flow run, or None."""
        ...

    def read_flow_runs(
        self,
        deployment_id: UUID,
        *,
        started_only: bool = True,
        state_type: StateType | None = None,
        limit: int = 200,
    ) -> list[FlowRun]:
        """The deployment's flow runs, newest start first (started ones only, unless `started_only` is False:
        an active schedule also creates future runs in the Scheduled state); only those whose state is of
        `state_type`, when given."""
        ...

    def create_flow_run(
        self,
        deployment_id: UUID,
        parameters: dict[str, Any] | None = None,
        *,
        name: str | None = None,
        tags: Sequence[str] = (),
    ) -> FlowRun:
        """A new Scheduled run of the deployment (parameters merged over the deployment's), named `name` (default:
        a name Prefect generates) and tagged with `tags` and the deployment's tags."""
        ...

    def reschedule_flow_run(self, flow_run_id: UUID, scheduled_time: datetime) -> None:
        """Put the run in the Scheduled state for `scheduled_time` (forced: whatever its state was)."""
        ...

    def set_flow_run_tags(self, flow_run_id: UUID, tags: Sequence[str]) -> None:
        """Replace the run's tags with `tags`."""
        ...

    # task runs
    def create_task_run(self, flow_run_id: UUID, name: str, key: str, state: State[Any]) -> TaskRun:
        """A task run of the flow run, named `name`, in `state` (set as is, without orchestration). `key` tells it
        from the flow run's other task runs: a second call with a key the flow run has answers that task run."""
        ...

    def set_task_run_state(self, task_run_id: UUID, state: State[Any]) -> None:
        """Put the task run in `state` as is (forced: whatever its state was)."""
        ...

    def read_task_runs(self, flow_run_id: UUID) -> list[TaskRun]:
        """The flow run's task runs, oldest first."""
        ...

    # blocks
    def emit_events(self, events: Sequence[Event]) -> None:
        """Send events to the API and return once it has accepted them. The server keeps one event per id: an event
        sent again with an id it has is not stored twice (and its triggers skip an id they have seen)."""
        ...

    def read_events(self, name: str, resource_ids: Sequence[str] | None = None, *, limit: int = 200) -> list[Event]:
        """Stored events named `name` (about one of `resource_ids`, when given), oldest first, at most `limit`."""
        ...

    def read_block(self, block_type_slug: str, name: str) -> BlockRef | None:
        """The block document `<block_type_slug>/<name>`, or None."""
        ...

    def send_notification(self, block_document_id: UUID, subject: str, body: str) -> None:
        """Send `subject` and `body` through the notification block document `block_document_id` (what an
        automation's SendNotification action does with it)."""
        ...


@contextmanager
def api_errors() -> Iterator[None]:
    """Failures of the Prefect API inside the block become `PrefectApiError` naming the request."""
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    try:
        yield
    except (ObjectNotFound, ObjectAlreadyExists) as exc:  # Prefect's client wraps some 404s and 409s
        raise _refused(exc.http_exc) from None
    except httpx.HTTPStatusError as exc:  # PrefectHTTPStatusError is one
        raise _refused(exc) from None
    except (OSError, httpx.HTTPError) as exc:
        raise PrefectApiError(f"cannot reach the Prefect API ({exc}); check PREFECT_API_URL") from None


def _refused(exc: Exception) -> PrefectApiError:
    if not isinstance(exc, httpx.HTTPStatusError):
        return PrefectApiError(f"the Prefect API refused a request ({exc})")
    return PrefectApiError(
        f"Prefect API {exc.request.method} {exc.request.url.path} answered {exc.response.status_code}: "
        f"{exc.response.text[:300]}"
    )


class ClientGateway:
    """The gateway over one Prefect client, opened on the first call and kept until `close` (see `connect_prefect`).

    One thread at a time: threads that talk to Prefect at once each open a gateway of their own.
    """

    def __init__(self, *, automations_page: int = AUTOMATIONS_PAGE) -> None:
        self._opened: SyncPrefectClient | None = None
        self._automations_page = automations_page

    def __repr__(self) -> str:
        return f"ClientGateway(connected={self._opened is not None})"

    @property
    def _client(self) -> SyncPrefectClient:
        if self._opened is None:
            from prefect.client.orchestration import get_client

            try:
                client = get_client(sync_client=True)
            except ValueError as exc:  # no API URL and no temporary server
                raise PrefectApiError(f"{exc}; set PREFECT_API_URL") from None
            with api_errors():
                client.__enter__()
            self._opened = client
        return self._opened

    @property
    def sync_client(self) -> SyncPrefectClient:
        """The open Prefect client itself, for Prefect's runtime alone (`prefect_context.shared_client` hands it to
        prefect-dbt's threads); everything else reads and writes through the gateway's methods."""
        return self._client

    def close(self) -> None:
        """Close the client, if one was opened."""
        if self._opened is not None:
            self._opened.__exit__(None, None, None)
            self._opened = None

    @property
    def api_url(self) -> str:
        return str(self._client.api_url)

    def healthcheck(self) -> Exception | None:
        return self._client.api_healthcheck()

    def for_thread(self) -> AbstractContextManager[PrefectGateway]:
        return connect_prefect()

    def read_deployment(self, full_name: str) -> DeploymentResponse | None:
        from prefect.exceptions import ObjectNotFound

        with api_errors():
            try:
                return self._client.read_deployment_by_name(full_name)
            except ObjectNotFound:
                return None

    def create_deployment(
        self,
        flow_name: str,
        name: str,
        schedules: Sequence[DeploymentScheduleCreate],
        settings: Mapping[str, Any],
    ) -> UUID:
        with api_errors():
            flow_id = self._client.create_flow_from_name(flow_name)
            return self._client.create_deployment(
                flow_id=flow_id, name=name, schedules=list(schedules), **checked_settings(settings)
            )

    def update_deployment(self, deployment_id: UUID, settings: Mapping[str, Any]) -> None:
        from prefect.client.schemas.actions import DeploymentUpdate

        with api_errors():
            self._client.update_deployment(deployment_id, DeploymentUpdate(**checked_settings(settings)))

    def read_schedules(self, deployment_id: UUID) -> list[DeploymentSchedule]:
        from prefect.exceptions import ObjectNotFound

        with api_errors():
            try:
                return self._client.read_deployment_schedules(deployment_id)
            except ObjectNotFound:
                return []

    def create_schedules(self, deployment_id: UUID, schedules: Sequence[DeploymentScheduleCreate]) -> None:
        with api_errors():
            self._client.create_deployment_schedules(deployment_id, list(schedules))

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
        with api_errors():
            self._client.update_deployment_schedule(
                deployment_id, schedule_id, active=active, schedule=schedule, parameters=parameters, slug=slug
            )

    def delete_schedule(self, deployment_id: UUID, schedule_id: UUID) -> None:
        with api_errors():
            self._client.delete_deployment_schedule(deployment_id, schedule_id)

    def read_automations(self) -> list[Automation]:
        from prefect.client.schemas.sorting import AutomationSort

        # Newest first, so that an automation created while the pages are read shifts what is already read (and is
        # dropped as a repeat) rather than what is still to come; answered by name, as one request would be.
        found: dict[UUID, Automation] = {}
        offset = 0
        with api_errors():
            while True:
                page = self._client.read_automations(
                    sort=AutomationSort.CREATED_DESC, limit=self._automations_page, offset=offset
                )
                found.update((automation.id, automation) for automation in page)
                offset += len(page)
                if len(page) < self._automations_page:
                    return sorted(found.values(), key=lambda automation: automation.name)

    def read_related_automations(self, deployment_id: UUID) -> list[Automation]:
        with api_errors():
            return self._client.read_resource_related_automations(deployment_resource(deployment_id))

    def create_automation(self, automation: AutomationCore) -> UUID:
        with api_errors():
            return self._client.create_automation(automation)

    def update_automation(self, automation_id: UUID, automation: AutomationCore) -> None:
        with api_errors():
            self._client.update_automation(automation_id, automation)

    def set_automation_enabled(self, automation_id: UUID, enabled: bool) -> None:
        with api_errors():
            if enabled:
                self._client.resume_automation(automation_id)
            else:
                self._client.pause_automation(automation_id)

    def delete_automation(self, automation_id: UUID) -> None:
        with api_errors():
            try:
                self._client.delete_automation(automation_id)
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code != 404:
                    raise

    def read_work_pool(self, name: str) -> WorkPool | None:
        from prefect.exceptions import ObjectNotFound

        with api_errors():
            try:
                return self._client.read_work_pool(name)
            except ObjectNotFound:
                return None

    def create_work_pool(self, name: str, pool_type: str) -> WorkPool | None:
        from prefect.client.schemas.actions import WorkPoolCreate
        from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

        with api_errors():
            try:
                return self._client.create_work_pool(WorkPoolCreate(name=name, type=pool_type))
            except ObjectAlreadyExists:
                return self.read_work_pool(name)
            except ObjectNotFound:
                return None
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code == 404:  # the API has no such pool type
                    return None
                raise

    def read_workers(self, pool_name: str) -> list[Worker]:
        with api_errors():
            return self._client.read_workers_for_work_pool(pool_name)

    def read_flow_run(self, flow_run_id: UUID) -> FlowRun | None:
        from prefect.exceptions import ObjectNotFound

        with api_errors():
            try:
                return self._client.read_flow_run(flow_run_id)
            except ObjectNotFound:
                return None

    def read_flow_runs(
        self,
        deployment_id: UUID,
        *,
        started_only: bool = True,
        state_type: StateType | None = None,
        limit: int = 200,
    ) -> list[FlowRun]:
        from prefect.client.schemas.filters import (
            DeploymentFilter,
            DeploymentFilterId,
            FlowRunFilter,
            FlowRunFilterStartTime,
            FlowRunFilterState,
            FlowRunFilterStateType,
        )
        from prefect.client.schemas.sorting import FlowRunSort

        run_filter = FlowRunFilter(
            start_time=FlowRunFilterStartTime(is_null_=False) if started_only else None,
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[state_type])) if state_type else None,
        )
        with api_errors():
            return self._client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
                flow_run_filter=run_filter,
                sort=FlowRunSort.START_TIME_DESC,
                limit=limit,
            )

    def create_flow_run(
        self,
        deployment_id: UUID,
        parameters: dict[str, Any] | None = None,
        *,
        name: str | None = None,
        tags: Sequence[str] = (),
    ) -> FlowRun:
        with api_errors():
            return self._client.create_flow_run_from_deployment(
                deployment_id, parameters=parameters, name=name, tags=list(tags) or None
            )

    def reschedule_flow_run(self, flow_run_id: UUID, scheduled_time: datetime) -> None:
        from prefect.states import Scheduled

        with api_errors():
            self._client.set_flow_run_state(flow_run_id, Scheduled(scheduled_time=scheduled_time), force=True)

    def set_flow_run_tags(self, flow_run_id: UUID, tags: Sequence[str]) -> None:
        with api_errors():
            self._client.update_flow_run(flow_run_id, tags=list(tags))

    def create_task_run(self, flow_run_id: UUID, name: str, key: str, state: State[Any]) -> TaskRun:
        from prefect import Task

        with api_errors():
            return self._client.create_task_run(
                Task(_recorded_task, name=RECORDED_TASK), flow_run_id, dynamic_key=key, name=name, state=state
            )

    def set_task_run_state(self, task_run_id: UUID, state: State[Any]) -> None:
        with api_errors():
            self._client.set_task_run_state(task_run_id, state, force=True)

    def read_task_runs(self, flow_run_id: UUID) -> list[TaskRun]:
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
        from prefect.client.schemas.sorting import TaskRunSort

        found: list[TaskRun] = []
        with api_errors():
            while True:
                page = self._client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                    sort=TaskRunSort.EXPECTED_START_TIME_ASC,
                    limit=TASK_RUNS_PAGE,
                    offset=len(found),
                )
                found += page
                if len(page) < TASK_RUNS_PAGE:
                    return found

    def emit_events(self, events: Sequence[Event]) -> None:
        if not events:
            return
        with api_errors():
            response = self._client.request("POST", "/events", json=[e.model_dump(mode="json") for e in events])
            response.raise_for_status()

    def read_events(self, name: str, resource_ids: Sequence[str] | None = None, *, limit: int = 200) -> list[Event]:
        from prefect.events.filters import EventFilter, EventNameFilter, EventOrder, EventResourceFilter

        events_filter = EventFilter(
            event=EventNameFilter(name=[name]),
            resource=EventResourceFilter(id=list(resource_ids)) if resource_ids is not None else None,
            order=EventOrder.ASC,
        )
        with api_errors():
            page = self._client.read_events(events_filter, limit=min(limit, EVENTS_PAGE))
            found: list[Event] = list(page.events)
            while page.next_page is not None and len(found) < limit:
                page = self._client.read_events_page(str(page.next_page))
                found.extend(page.events)
        return found[:limit]

    def read_block(self, block_type_slug: str, name: str) -> BlockRef | None:
        from prefect.exceptions import ObjectNotFound

        with api_errors():
            try:
                document = self._client.read_block_document_by_name(name, block_type_slug, include_secrets=False)
            except ObjectNotFound:
                return None
        capabilities = document.block_schema.capabilities if document.block_schema else []
        return BlockRef(id=document.id, capabilities=tuple(capabilities))

    def send_notification(self, block_document_id: UUID, subject: str, body: str) -> None:
        import inspect

        from prefect.blocks.core import Block
        from prefect.exceptions import ObjectNotFound
        from prefect.utilities.asyncutils import run_coro_as_sync

        with api_errors():
            try:
                document = self._client.read_block_document(block_document_id, include_secrets=True)
            except ObjectNotFound:
                raise PrefectApiError(
                    f"notification block document {block_document_id} does not exist; run `dbt2prefect apply`"
                ) from None
        block = Block._from_block_document(document)
        notify = getattr(block, "notify", None)
        if notify is None:
            raise PrefectApiError(f"block document {block_document_id} ({document.name}) cannot send notifications")
        try:
            sent = notify(body, subject)
            if inspect.iscoroutine(sent):
                run_coro_as_sync(sent)
        except (OSError, httpx.HTTPError) as exc:
            raise PrefectApiError(f"notification block {document.name} could not send ({exc})") from None


def checked_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The deployment settings as a dict, refusing a key that is not one of `DEPLOYMENT_SETTINGS`."""
    unknown = sorted(set(settings) - set(DEPLOYMENT_SETTINGS))
    if unknown:
        raise ValueError(f"not a deployment setting the gateway writes: {', '.join(unknown)}")
    return dict(settings)


@contextmanager
def connect_prefect() -> Iterator[ClientGateway]:
    """The gateway to the Prefect API of the environment (PREFECT_API_URL, or Prefect's temporary server): one client,
    opened on the first call (so an unused gateway costs nothing) and closed when the block ends.

    A failure to open the client (e.g. no API URL and the temporary server disabled) is a `PrefectApiError` of the
    first call. Only the gateway's own calls translate errors: the block's other code keeps its own.
    """
    gateway = ClientGateway()
    try:
        yield gateway
    finally:
        gateway.close()


@contextmanager
def gateway_or_connect(prefect: PrefectGateway | None) -> Iterator[PrefectGateway]:
    """The gateway passed in, or one opened with `connect_prefect()` for the block (and closed after it)."""
    if prefect is not None:
        yield prefect
        return
    with connect_prefect() as opened:
        yield opened
