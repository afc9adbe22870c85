"""Cheaper Prefect context hand-off for prefect-dbt's per-node task threads.

`PrefectDbtRunner.invoke` serialises the Prefect context once, and its threads (one callback thread, one thread per
node) rebuild it with `hydrated_context` several times per node: for the task run, inside Prefect's task engine, and
for log events. As written for remote execution, each rebuild
- re-validates the whole Prefect `Settings` model from a dict (pydantic-settings reads the environment for ~50
  nested models),
- re-validates the flow run's result store from a dict, which looks its storage block up by slug and so imports
  every installed Prefect collection on first use (prefect-snowflake pulls in snowflake.core: ~2.8 s),
- and creates a new API client with its own SSL context, twice per node (once here, once in the task engine).

The threads live in the same process as the flow, so they can share the validated objects (pydantic accepts a model
instance without validating it again) and one API client (httpx clients are thread-safe). `install()` makes
prefect-dbt's threads do that; the flow run itself stays a dict, because prefect-dbt reads it as one.

It replaces names inside Prefect's task engine and prefect-dbt (including the private `prefect_dbt.core._tracker`),
so it is made only on the versions it was written for (`WRITTEN_FOR`) and only while those names hold Prefect's
own `hydrated_context` / `serialize_context`; anywhere else the stock hand-off runs (see `dbt2prefect.compat`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect.client.orchestration import SyncPrefectClient
from prefect.context import FlowRunContext, SettingsContext, SyncClientContext, hydrated_context, serialize_context

from dbt2prefect.compat import Target, applies
from dbt2prefect.prefect_gateway import connect_prefect

WRITTEN_FOR = {"prefect": "3.9.", "prefect-dbt": "0.7.25"}

_lock = threading.Lock()
_installed: list[Target] = []
"""The names replaced by `install()`, holding the stock objects to put back (empty: not installed)."""
_shared: list[SyncPrefectClient] = []
_active = threading.local()


def in_process_context() -> dict[str, Any]:
    """`serialize_context()`, with the settings and the result store passed as objects instead of dicts."""
    context = serialize_context()
    current = SettingsContext.get()
    if current is not None and context.get("settings_context"):
        context["settings_context"] = {"profile": current.profile, "settings": current.settings}
    flow_run_context = FlowRunContext.get()
    if flow_run_context is not None and context.get("flow_run_context", {}).get("result_store") is not None:
        context["flow_run_context"]["result_store"] = flow_run_context.result_store
    return context


@contextmanager
def _hydrated_with_shared_client(
    serialized_context: dict[str, Any] | None = None, client: Any = None
) -> Iterator[None]:
    """`hydrated_context` whose clients, including the task engine's own `get_client` calls, are the shared one.

    The task engine hydrates the context that prefect-dbt's thread has just hydrated: the same dict, already in
    effect in this thread, so the nested call keeps it instead of building every context again.
    """
    if serialized_context is not None and getattr(_active, "context", None) is serialized_context:
        yield
        return
    with _lock:
        shared = _shared[-1] if _shared else None
    client = client or shared
    if client is None or SyncClientContext.get() is not None:
        with hydrated_context(serialized_context, client=client):
            yield
        return
    # A context that is set, not entered: entering would open and later close the shared client in this thread.
    token = SyncClientContext.__var__.set(SyncClientContext.model_construct(client=client))
    _active.context = serialized_context
    try:
        with hydrated_context(serialized_context, client=client):
            yield
    finally:
        _active.context = None
        SyncClientContext.__var__.reset(token)


@contextmanager
def shared_client() -> Iterator[None]:
    """Within this block, prefect-dbt's threads reuse one open API client made with the caller's settings.

    Without `install()` nothing reads the shared client, so none is opened.
    """
    if not _installed:
        yield
        return
    with connect_prefect() as prefect:
        client = prefect.sync_client
        with _lock:
            _shared.append(client)
        try:
            yield
        finally:
            with _lock:
                _shared.remove(client)


def _targets() -> list[Target]:
    from prefect import task_engine
    from prefect_dbt.core import _tracker, runner

    return [
        Target(task_engine, "hydrated_context", hydrated_context),
        Target(runner, "serialize_context", serialize_context),
        Target(runner, "hydrated_context", hydrated_context),
        Target(_tracker, "hydrated_context", hydrated_context),
    ]


_REPLACEMENTS = {"serialize_context": in_process_context, "hydrated_context": _hydrated_with_shared_client}


def install() -> bool:
    """Make prefect-dbt's runner and tracker, and Prefect's task engine, use the cheaper hand-off (idempotent).

    Returns False, and changes nothing, on versions other than `WRITTEN_FOR` or when a replaced name is missing.
    Outside a `shared_client()` block (no dbt invocation running), every hydration is Prefect's own.
    """
    with _lock:
        if _installed:
            return True
        if not applies("prefect_context", WRITTEN_FOR, _targets):
            return False
        targets = _targets()
        for target in targets:
            setattr(target.module, target.name, _REPLACEMENTS[target.name])
        _installed.extend(targets)
    return True


def uninstall() -> None:
    """Put Prefect's and prefect-dbt's own functions back (the stock path)."""
    with _lock:
        for target in _installed:
            setattr(target.module, target.name, target.original)
        _installed.clear()
