"""A task run per dbt node, recorded from dbt's own events while it runs: the "states" node view
(`node_task_runs = "states"`).

prefect-dbt's per-node view ("all") runs Prefect's task engine for every node inside the dbt process: a thread per
node, about 7 log lines and events per node, and their CPU shares dbt's interpreter lock (docs/performance.md,
"Where the time goes"). In this view dbt runs as in the lean mode, and a callback hears two of dbt's events per node:
- `NodeStart`: the node gets a task run of the flow run, Running;
- `NodeFinished`: the task run ends in the node's state: `Failed` with dbt's message, `Completed` named `Warned`
  (`dbt2prefect.node_states.WARNED_STATE`) or `Skipped` with dbt's message, else `Completed`.
Task runs are named as prefect-dbt names them (`<resource type> <name>`) and keyed as the "exceptions" view keys
them, so the UI's task-run list of the flow run, filtered by state, shows every node. There are no asset events and
no per-node log lines: dbt's lines are in `dbt.log` with the run's artifacts, and every node is in the node table.

The callback only queues dbt's event; recorder threads, in the flow run's context, write the task runs in one of two
ways, so the build waits for neither Prefect nor the lock the writing holds:
- **state events** (`StateEvents`): each state change is sent as the event Prefect's own task engine sends for it
  (`prefect.utilities.engine.emit_task_run_state_change_event`), through the flow process's events client; the
  server records the task run from its events, as it records the task engine's. A node that ends within
  `RUNNING_AFTER_SECONDS` sends one event, its final state (its task run carries its start and duration); a longer
  one sends its Running event first, so it shows as running while it runs. No API request. Used on the Prefect
  versions this was written for (`WRITTEN_FOR`) while the function is there;
- **API requests** (`ApiRequests`, the path everywhere else): the task run is created Running, then its final state
  is set, through the Prefect gateway (`RECORDERS` threads, a node's two requests always in one thread, in order).
  2 API requests per node, counted as 2 events too (as in `dbt2prefect.exception_task_runs`). A failure of the API
  stops the recording (dbt goes on and its artifacts are still stored); the summary says where it stopped.
Either way a task run lasts about as long as its node did (its states are stamped when they are sent or received).

Each node is counted as 2 of the budget (`RECORDED_COST`) either way, an upper bound for state events. The nodes
admitted in any 60 s stay under the budget `budget` gives (`[tenant.observability]
logs_events_per_minute`, and with API requests the smaller of it and `api_requests_per_minute`); a node that would
not fit runs without a task run and is named in the summary.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID, uuid4

from dbt2prefect.compat import Target, applies
from dbt2prefect.dbt_run import FAILED_STATUSES, WARN_STATUS, RunPaths, lean_invoker
from dbt2prefect.exception_task_runs import RECORDED_COST, Recording, task_run_key, task_run_name
from dbt2prefect.exception_task_runs import budget as requests_budget
from dbt2prefect.node_budget import NodeBudget
from dbt2prefect.node_states import WARNED_STATE, state_message

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State

    from dbt2prefect.prefect_gateway import PrefectGateway
    from dbt2prefect.tenant import ObservabilitySettings

WRITTEN_FOR = {"prefect": "3.9."}
"""The Prefect versions whose task-run state events `StateEvents` sends (the task engine's own function builds them)."""
RUNNING_AFTER_SECONDS = 5.0
"""A node still running this long after dbt started it shows as Running in Prefect; a shorter one appears when it
ends (its task run carrying its start and duration), so most nodes cost 1 event, not 2."""
RECORDERS = 4
"""Threads that make API requests: a node's requests wait for the API's answers (tens of milliseconds to Prefect
Cloud), so one thread would fall behind dbt's threads on a large project."""
TICK_SECONDS = 0.5
"""How often an idle recorder thread lets its writer send what is due (`Writer.tick`)."""
SKIPPED_STATE = "Skipped"
"""The name of the Completed state of a node dbt skipped (an upstream node failed)."""
SKIPPED_STATUS = "skipped"
_NODE_EVENTS = frozenset({"NodeStart", "NodeFinished"})


def final_state(unique_id: str, status: str, message: str) -> State[Any]:
    """The state a node's task run ends in, from dbt's status and message."""
    from prefect.states import Completed, Failed

    said = state_message(unique_id, status, message)
    if status in FAILED_STATUSES:
        return Failed(message=said)
    if status == WARN_STATUS:
        return Completed(name=WARNED_STATE, message=said)
    if status == SKIPPED_STATUS:
        return Completed(name=SKIPPED_STATE, message=said)
    return Completed(message=said)


class Writer(Protocol):
    """How task runs are written: `start` a node's task run (answering what `end` needs), `end` it in its final
    state, `tick` to send what is due; `threads` recorder threads, each writing within its own `opened()` block."""

    threads: int

    def opened(self) -> AbstractContextManager[Any]: ...

    def start(self, session: Any, name: str, key: str) -> Any: ...

    def end(self, session: Any, started: Any, state: State[Any]) -> None: ...

    def tick(self, now: datetime) -> None:
        """Called by the recorder thread at least every `TICK_SECONDS` (what is due at `now`)."""


class ApiRequests:
    """Task runs written through the Prefect gateway: created Running, then set to their final state."""

    threads = RECORDERS

    def __init__(self, prefect: PrefectGateway, flow_run_id: UUID) -> None:
        self._prefect = prefect
        self._flow_run_id = flow_run_id

    def opened(self) -> AbstractContextManager[PrefectGateway]:
        return self._prefect.for_thread()

    def start(self, session: PrefectGateway, name: str, key: str) -> UUID:
        from prefect.states import Running

        return session.create_task_run(self._flow_run_id, name, key, Running()).id

    def end(self, session: PrefectGateway, started: UUID, state: State[Any]) -> None:
        session.set_task_run_state(started, state)

    def tick(self, now: datetime) -> None:
        """Nothing is deferred: the task run was created Running."""


def _event_targets() -> list[Target]:
    from prefect.utilities import engine

    return [Target(engine, "emit_task_run_state_change_event")]


def state_events_apply() -> bool:
    """Whether `StateEvents` may write task runs here (else `ApiRequests` does); one warning per process if not."""
    return applies("state_task_runs events", WRITTEN_FOR, _event_targets)


class StateEvents:
    """Task runs written as the state events Prefect's task engine sends. A node that ends within
    `RUNNING_AFTER_SECONDS` sends one event, its final state, whose task run carries the node's start, end and
    duration; a node still running then sends its Running event first (from `tick`), so a long node shows as
    running while it runs."""

    threads = 1  # sending only queues the event for the events client

    def __init__(self, flow_run_id: UUID, running_after: float | None = None) -> None:
        from prefect import Task

        from dbt2prefect.prefect_gateway import RECORDED_TASK, _recorded_task

        self._flow_run_id = flow_run_id
        self._task_key = Task(_recorded_task, name=RECORDED_TASK).task_key
        self._running_after = RUNNING_AFTER_SECONDS if running_after is None else running_after
        self._quiet: dict[UUID, _Started] = {}
        """Started task runs whose Running event is not sent yet, oldest first."""

    def opened(self) -> AbstractContextManager[None]:
        return nullcontext()

    @staticmethod
    def _send(started: _Started, state: State[Any]) -> None:
        """Move the task run to `state` as the task engine does (`SyncTaskRunEngine.set_state`) and send the event."""
        from prefect.utilities.engine import emit_task_run_state_change_event

        task_run, last = started.task_run, started.task_run.state
        state.state_details.task_run_id, state.state_details.flow_run_id = task_run.id, task_run.flow_run_id
        task_run.state, task_run.state_id, task_run.state_type, task_run.state_name = (
            state, state.id, state.type, state.name
        )  # fmt: skip
        if state.is_final():
            task_run.end_time = state.timestamp
            task_run.total_run_time = state.timestamp - task_run.start_time
        started.follows = emit_task_run_state_change_event(
            task_run=task_run, initial_state=last if started.follows else None, validated_state=state,
            follows=started.follows,
        )  # fmt: skip

    def start(self, session: None, name: str, key: str) -> _Started:
        from prefect.client.schemas.objects import TaskRun
        from prefect.states import Pending

        pending: State[Any] = Pending()
        task_run = TaskRun(
            id=uuid4(), name=name, flow_run_id=self._flow_run_id, task_key=self._task_key, dynamic_key=key,
            expected_start_time=pending.timestamp, start_time=pending.timestamp, run_count=1, state=pending,
            state_id=pending.id, state_type=pending.type, state_name=pending.name, created=pending.timestamp,
            updated=pending.timestamp,
        )  # fmt: skip
        started = _Started(task_run)
        self._quiet[task_run.id] = started
        return started

    def tick(self, now: datetime) -> None:
        """Send the Running event of each node started `RUNNING_AFTER_SECONDS` ago or more and not ended."""
        from prefect.states import Running

        while self._quiet:
            started = next(iter(self._quiet.values()))
            since = started.task_run.start_time
            if since is None or (now - since).total_seconds() < self._running_after:
                return
            del self._quiet[started.task_run.id]
            self._send(started, Running(timestamp=since))

    def end(self, session: None, started: _Started, state: State[Any]) -> None:
        self._quiet.pop(started.task_run.id, None)
        self._send(started, state)


@dataclass
class _Started:
    """A task run `StateEvents` started, and its last event (None: none sent yet)."""

    task_run: Any
    follows: Any = None


def budget(observability: ObservabilitySettings) -> tuple[NodeBudget, str]:
    """The budget the recorded task runs stay under, and the setting that gives it (as the summary names it): the
    events budget where state events write them, else that of API requests (`exception_task_runs.budget`)."""
    if state_events_apply():
        events = observability.logs_events_per_minute
        return NodeBudget(events), f"logs_events_per_minute = {events}"
    return requests_budget(observability)


class StateRecorder:
    """Records one dbt invocation's nodes as task runs through `writer` (see the module's description); `budget`
    admits the nodes; `step` is the invocation's index (a node has one task run per step, keyed
    `<unique id>@step<step>`)."""

    def __init__(self, writer: Writer, budget: NodeBudget, step: int, recording: Recording) -> None:
        self._writer = writer
        self._budget = budget
        self._step = step
        self._recording = recording
        self._queues: list[queue.SimpleQueue[Any]] = [queue.SimpleQueue() for _ in range(max(1, writer.threads))]
        self._started: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    def __call__(self, event: Any) -> None:
        """dbt's callback, in dbt's threads: queue a node's start or end (nothing else, to keep dbt's pace)."""
        if event.info.name in _NODE_EVENTS and not self._stopped.is_set():
            node = event.data.node_info
            self._queues[hash(node.unique_id) % len(self._queues)].put(event)

    @contextmanager
    def recording(self) -> Iterator[StateRecorder]:
        """Within this block the recorder threads run, in the caller's context (the flow run's, which Prefect's
        events name as related); at its end they record what is queued and stop."""
        threads = [
            threading.Thread(
                target=contextvars.copy_context().run, args=(self._work, q), name=f"dbt2prefect-states-{i}", daemon=True
            )
            for i, q in enumerate(self._queues)
        ]
        for thread in threads:
            thread.start()
        try:
            yield self
        except BaseException:  # dbt stopped (SIGTERM) or crashed: what is queued is dropped, not recorded
            self._stopped.set()
            raise
        finally:
            for q in self._queues:
                q.put(None)
            for thread in threads:
                thread.join()

    def _work(self, events: queue.SimpleQueue[Any]) -> None:
        from dbt2prefect.prefect_gateway import PrefectApiError

        try:
            with self._writer.opened() as session:
                while True:
                    try:
                        event = events.get(timeout=TICK_SECONDS)
                    except queue.Empty:
                        event = False
                    if event is None:
                        break
                    if event and not self._stopped.is_set():
                        self._record(session, event)
                    self._writer.tick(datetime.now(UTC))
        except PrefectApiError as exc:
            with self._lock:
                if self._recording.failure is None:
                    self._recording.failure = str(exc)
            self._stopped.set()
            while events.get() is not None:  # the rest of the queue, until the end of the invocation
                pass

    def _record(self, session: Any, event: Any) -> None:
        node = event.data.node_info
        unique_id = str(node.unique_id)
        if event.info.name == "NodeStart":
            if self._budget.admit(unique_id, RECORDED_COST):
                name = task_run_name(str(node.resource_type), str(node.node_name), unique_id)
                started = self._writer.start(session, name, task_run_key(unique_id, self._step))
                with self._lock:
                    self._started[unique_id] = started
            return
        with self._lock:
            started = self._started.pop(unique_id, None)
        if started is None:  # left out by the budget
            return
        try:
            result = event.data.run_result
            status = str(result.status or node.node_status)
            self._writer.end(session, started, final_state(unique_id, status, str(result.message)))
        finally:
            self._budget.finished(unique_id)
        with self._lock:
            self._recording.count += 1


def writer(prefect: PrefectGateway, flow_run_id: UUID) -> Writer:
    """State events where they apply, else API requests through `prefect` (see the module)."""
    return StateEvents(flow_run_id) if state_events_apply() else ApiRequests(prefect, flow_run_id)


def states_invoker(
    args: list[str],
    paths: RunPaths,
    target_path: Path,
    *,
    writer: Writer,
    budget: NodeBudget,
    recording: Recording,
) -> tuple[bool, str | None]:
    """Invoke dbt as the lean mode does, recording its nodes as task runs while it runs (see the module)."""
    recorder = StateRecorder(writer, budget, paths.step_of(target_path), recording)
    with recorder.recording():
        return lean_invoker(args, paths, target_path, callbacks=[recorder])
