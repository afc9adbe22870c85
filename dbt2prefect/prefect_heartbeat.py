"""Flow-run heartbeats that stop at once when the flow run ends, and when the worker that started the run is gone.

Prefect 3.9's heartbeat thread sleeps in one-second steps and the flow engine joins it when the run ends, so every
flow run waits up to a second (half a second on average) after its final state before it returns. This is the same
heartbeat, emitted by the engine's own methods, waiting on the stop event instead of sleeping. `install()` replaces
the engine's context manager only on the Prefect minor version it was written for, and only while the engine
still has the names it uses; elsewhere Prefect's stays (see `dbt2prefect.compat`).

Nothing is replaced on import. The engine enters the heartbeat before any code of the flow runs, so a process that
runs the flow installs it first: `dbt2prefect run` calls `install()`, and the flow module calls
`install_in_flow_run_process()`, which installs only in a process Prefect started to execute one flow run (a
worker's or a runner's); a process that only imports the flow (the CLI reading its parameters, a notebook) keeps
Prefect's own heartbeat.

A process started by a worker for one flow run (`PREFECT__FLOW_RUN_ID`) that outlives the worker (SIGKILL, OOM)
is an orphan: its output goes to a dead pipe, and prefect-dbt's runner then waits forever for its event queue.
Heartbeats from it would keep the run Running for good, hiding it from Prefect's zombie detection. So when the
process's parent changes, the heartbeats stop (zombie detection then marks the run Crashed within its window),
and the process gets SIGTERM, which Prefect's engine turns into a Crashed state before the process exits.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect import flow_engine

from dbt2prefect.compat import Target, applies

WRITTEN_FOR = {"prefect": "3.9."}

FLOW_RUN_ENV = "PREFECT__FLOW_RUN_ID"
"""Set by Prefect in the process it starts to execute a deployment's flow run."""

_stock: list[Any] = []
"""Prefect's own `_send_heartbeats`, while `install()` has replaced it."""


@contextmanager
def send_heartbeats(engine: Any, join_on_exit: bool = True) -> Iterator[None]:
    """Emit a heartbeat event every `heartbeat_frequency` seconds while the flow runs (as Prefect's own does), and,
    in a process a worker started for the run, end the run as Crashed when that worker is gone (heartbeats or not).
    """
    heartbeat = engine.heartbeat_seconds
    parent = _watched_parent(engine)
    if heartbeat is None and parent is None:
        yield
        return
    seconds = max(heartbeat or 0, flow_engine.MINIMUM_HEARTBEAT_INTERVAL)
    template = engine._build_heartbeat_event_template() if heartbeat is not None else None
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            run = engine.flow_run
            if run is not None and run.state is not None and run.state.is_final():
                return
            if template is not None:
                try:
                    engine._emit_flow_run_heartbeat(*template)
                except Exception:
                    engine.logger.debug("Failed to emit heartbeat", exc_info=True)
            if parent is None:
                stop.wait(seconds)
            elif _wait_or_orphaned(stop, seconds, parent):
                _end_orphan(engine, parent)
                return

    # The thread runs in a copy of this context, so it sees the flow run's settings (API URL) as Prefect's does.
    thread = threading.Thread(target=contextvars.copy_context().run, args=(beat,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        if join_on_exit:
            thread.join(timeout=2)


ORPHAN_GRACE_SECONDS = 15.0
"""How long an orphaned flow-run process has, after SIGTERM, before it exits without cleaning up."""
ORPHAN_EXIT_CODE = 143  # as for SIGTERM

PARENT_CHECK_SECONDS = 1.0
"""How often a run started by a worker checks that its worker still runs."""


def _watched_parent(engine: Any) -> int | None:
    """The pid of the worker that started this process for this flow run, or None when the process was not
    started for it (a flow called in-process, as `dbt2prefect run` does, may outlive its shell on purpose)."""
    run = engine.flow_run
    if run is None or os.environ.get("PREFECT__FLOW_RUN_ID") != str(run.id):
        return None
    return os.getppid()


def _wait_or_orphaned(stop: threading.Event, seconds: float, parent: int) -> bool:
    """Wait up to `seconds` for `stop`; True as soon as the process's parent is no longer `parent`."""
    deadline = time.monotonic() + seconds
    while not stop.wait(min(PARENT_CHECK_SECONDS, max(deadline - time.monotonic(), 0))):
        if os.getppid() != parent:
            return True
        if time.monotonic() >= deadline:
            return False
    return False


def _end_orphan(engine: Any, parent: int) -> None:
    """No more heartbeats; SIGTERM to this process, which Prefect's engine reports as Crashed; the process exits
    ORPHAN_GRACE_SECONDS later whatever the handlers did (zombie detection then marks the run Crashed)."""
    # SIGTERM lets the engine report the run, but a handler may turn it into Ctrl-C for dbt, and dbt may go on:
    # an orphan must not finish the run nobody watches, so it ends for good after a grace period. Both come before
    # the log line: the process's output went to the dead worker, and nothing may stop them.
    ending = threading.Timer(ORPHAN_GRACE_SECONDS, os._exit, args=(ORPHAN_EXIT_CODE,))
    ending.daemon = True
    ending.start()
    os.kill(os.getpid(), signal.SIGTERM)
    with contextlib.suppress(Exception):  # a log line to a dead pipe must not keep the orphan alive
        engine.logger.error(
            "The worker process (pid %s) that started this flow run is gone: the run's heartbeats stop and the "
            "run ends as Crashed (start it again from a running worker)",
            parent,
        )


def _targets() -> list[Target]:
    engine = flow_engine.BaseFlowRunEngine
    return [
        Target(flow_engine, "_send_heartbeats"),
        Target(flow_engine, "MINIMUM_HEARTBEAT_INTERVAL"),
        Target(engine, "heartbeat_seconds"),
        Target(engine, "_build_heartbeat_event_template"),
        Target(engine, "_emit_flow_run_heartbeat"),
    ]


def install() -> bool:
    """Use `send_heartbeats` in Prefect's flow engine; returns False (and changes nothing) where it does not apply."""
    if _stock:
        return True
    if not applies("prefect_heartbeat", WRITTEN_FOR, _targets):
        return False
    _stock.append(flow_engine._send_heartbeats)
    flow_engine._send_heartbeats = send_heartbeats
    return True


def in_flow_run_process() -> bool:
    """True in a process that Prefect started to execute a flow run (a worker's, for a deployment run)."""
    return bool(os.environ.get(FLOW_RUN_ENV))


def install_in_flow_run_process() -> bool:
    """`install()` when this process was started by Prefect to execute a flow run; elsewhere change nothing."""
    return in_flow_run_process() and install()


def uninstall() -> None:
    """Put Prefect's own heartbeat context manager back."""
    if _stock:
        flow_engine._send_heartbeats = _stock.pop()
