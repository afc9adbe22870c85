"""The in-process Prefect tuning around dbt: context hand-off to prefect-dbt's threads, heartbeats, garbage collection."""

from __future__ import annotations

import gc
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import prefect
import pytest
from prefect import flow, flow_engine
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext, SettingsContext

from dbt2prefect import gc_tuning, prefect_context, prefect_heartbeat


def _in_thread(fn: Any) -> Any:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the test thread
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(30)
    if "error" in box:
        raise box["error"]
    return box["value"]


def test_task_threads_share_the_flow_runs_objects_and_one_client(prefect_api: None) -> None:
    prefect_context.install()

    @flow
    def probe() -> dict[str, Any]:
        context = prefect_context.in_process_context()
        main = FlowRunContext.get()
        assert main is not None
        with prefect_context.shared_client():
            shared = get_client(sync_client=True)

            def in_thread() -> dict[str, Any]:
                with prefect_context._hydrated_with_shared_client(context):
                    hydrated = FlowRunContext.get()
                    # The task engine hydrates the same dict again inside the thread: that must keep the context.
                    with prefect_context._hydrated_with_shared_client(context):
                        nested = FlowRunContext.get()
                    settings = SettingsContext.get()
                    return {
                        "client": get_client(sync_client=True),
                        "same_after_nesting": nested is hydrated,
                        "result_store": hydrated.result_store if hydrated else None,
                        "flow_run_id": hydrated.flow_run.id if hydrated and hydrated.flow_run else None,
                        "settings": settings.settings if settings else None,
                    }

            seen = _in_thread(in_thread)
            return {**seen, "shared": shared, "main": main, "main_settings": SettingsContext.get()}

    seen = probe()
    assert seen["client"] is seen["shared"], "every get_client() in the thread returns the one shared client"
    assert seen["same_after_nesting"]
    assert seen["result_store"] is seen["main"].result_store, "the result store is handed over, not re-validated"
    assert seen["flow_run_id"] == seen["main"].flow_run.id
    assert seen["settings"] is seen["main_settings"].settings
    assert "snowflake.core" not in sys.modules, "hydrating must not import every Prefect collection"


def test_outside_a_dbt_invocation_hydration_is_prefects_own(prefect_api: None) -> None:
    @flow
    def probe() -> bool:
        context = prefect_context.in_process_context()

        def in_thread() -> bool:
            with prefect_context._hydrated_with_shared_client(context):
                return FlowRunContext.get() is not None

        return bool(_in_thread(in_thread))

    assert probe() is True


def test_heartbeat_thread_stops_as_soon_as_the_flow_run_ends(
    prefect_api: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert prefect_heartbeat.install() is True
    exits: list[float] = []
    beats: list[float] = []

    @contextmanager
    def timed(engine: Any, join_on_exit: bool = True) -> Iterator[None]:
        original = engine._emit_flow_run_heartbeat
        engine._emit_flow_run_heartbeat = lambda *a, **k: (beats.append(time.monotonic()), original(*a, **k))
        manager = prefect_heartbeat.send_heartbeats(engine, join_on_exit)
        manager.__enter__()
        try:
            yield
        finally:
            started = time.perf_counter()
            manager.__exit__(None, None, None)
            exits.append(time.perf_counter() - started)

    monkeypatch.setattr(flow_engine, "_send_heartbeats", timed)

    @flow
    def short() -> int:
        time.sleep(0.2)
        return 1

    for _ in range(3):
        assert short() == 1
    assert len(beats) == 3, "one heartbeat at the start of each flow run"
    # Prefect 3.9's own loop sleeps in whole seconds and is joined here: up to 1 s per flow run.
    assert max(exits) < 0.2, exits


def test_heartbeat_install_leaves_other_prefect_versions_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prefect, "__version__", "3.10.0")
    before = flow_engine._send_heartbeats
    assert prefect_heartbeat.install() is False
    assert flow_engine._send_heartbeats is before


def test_fewer_collections_freezes_and_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    saved = gc.get_threshold()
    monkeypatch.setattr(gc_tuning, "_depth", 0)
    with gc_tuning.fewer_collections():
        assert gc.get_threshold()[0] == max(gc_tuning.YOUNG_THRESHOLD, saved[0])
        assert gc.get_freeze_count() > 0
        with gc_tuning.fewer_collections():  # a second invocation at the same time shares the setting
            assert gc.get_threshold()[0] == max(gc_tuning.YOUNG_THRESHOLD, saved[0])
        assert gc.get_freeze_count() > 0, "the outer invocation is still running"
    assert gc.get_threshold() == saved
    assert gc.get_freeze_count() == 0


def test_fewer_collections_restores_after_an_error() -> None:
    saved = gc.get_threshold()
    with pytest.raises(RuntimeError), gc_tuning.fewer_collections():
        raise RuntimeError("dbt failed")
    assert gc.get_threshold() == saved and gc.get_freeze_count() == 0
