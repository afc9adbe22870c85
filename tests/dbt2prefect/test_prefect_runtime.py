"""The in-process Prefect tuning around dbt: context hand-off to prefect-dbt's threads, heartbeats, garbage collection."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import prefect
import prefect.context
import prefect_dbt
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


def test_task_threads_share_the_flow_runs_objects_and_one_client(
    prefect_api: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefect_context.install()
    import prefect.blocks.core

    # Counted rather than read from sys.modules: another test in this process may have loaded them already.
    loads: list[str] = []
    stock_load = prefect.blocks.core.load_prefect_collections
    monkeypatch.setattr(
        prefect.blocks.core,
        "load_prefect_collections",
        lambda: loads.append(threading.current_thread().name) or stock_load(),
    )

    @flow
    def probe() -> dict[str, Any]:
        context = prefect_context.in_process_context()
        main = FlowRunContext.get()
        assert main is not None
        with prefect_context.shared_client():
            shared = get_client(sync_client=True)

            def in_thread() -> dict[str, Any]:
                loads.clear()
                with prefect_context._hydrated_with_shared_client(context):
                    hydrated = FlowRunContext.get()
                    # The task engine hydrates the same dict again inside the thread: that must keep the context.
                    with prefect_context._hydrated_with_shared_client(context):
                        nested = FlowRunContext.get()
                    settings = SettingsContext.get()
                    return {
                        "collection_loads": list(loads),
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
    assert seen["collection_loads"] == [], "hydrating must not import every Prefect collection"


def test_outside_a_dbt_invocation_hydration_is_prefects_own(prefect_api: None) -> None:
    @flow
    def probe() -> bool:
        context = prefect_context.in_process_context()

        def in_thread() -> bool:
            with prefect_context._hydrated_with_shared_client(context):
                return FlowRunContext.get() is not None

        return bool(_in_thread(in_thread))

    assert probe() is True


def test_heartbeats_are_emitted_and_their_thread_ends_with_the_flow_run(
    prefect_api: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # How much sooner a flow run returns is a benchmark's figure (bench/flow_exit.py), not this test's.
    assert prefect_heartbeat.install() is True
    beats: list[str] = []
    threads: list[threading.Thread] = []

    @contextmanager
    def observed(engine: Any, join_on_exit: bool = True) -> Iterator[None]:
        original = engine._emit_flow_run_heartbeat
        engine._emit_flow_run_heartbeat = lambda *a, **k: (beats.append(str(engine.flow_run.id)), original(*a, **k))
        before = set(threading.enumerate())
        with prefect_heartbeat.send_heartbeats(engine, join_on_exit):
            threads.extend(set(threading.enumerate()) - before)
            yield

    monkeypatch.setattr(flow_engine, "_send_heartbeats", observed)

    @flow
    def short() -> int:
        return 1

    for _ in range(3):
        assert short() == 1
    assert len(set(beats)) == len(beats) == 3, "one heartbeat at the start of each flow run"
    assert threads and not any(thread.is_alive() for thread in threads), "no heartbeat thread outlives its run"


def test_heartbeat_install_leaves_other_prefect_versions_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    prefect_heartbeat.uninstall()
    monkeypatch.setattr(prefect, "__version__", "3.10.0")
    before = flow_engine._send_heartbeats
    assert prefect_heartbeat.install() is False
    assert flow_engine._send_heartbeats is before
    monkeypatch.undo()
    assert prefect_heartbeat.install() is True


def test_context_hand_off_leaves_other_prefect_dbt_versions_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect_dbt.core import runner

    prefect_context.uninstall()
    monkeypatch.setattr(prefect_dbt, "__version__", "0.7.26")
    assert prefect_context.install() is False
    assert runner.serialize_context is prefect.context.serialize_context
    monkeypatch.undo()
    assert prefect_context.install() is True


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
