"""Cheaper Prefect context hand-off for prefect-dbt's per-node task threads.

`PrefectDbtRunner.invoke` serialises the Prefect context once, and its per-node threads rebuild it with
`hydrated_context` several times per node (task start, each log event, node finish). Each rebuild re-validated the
complete Prefect `Settings` model from a dict (pydantic-settings reads the environment for ~50 nested models) and
created a new API client (with its own SSL context). Measured in bench/flow_overhead.py, that was most of the
per-node overhead. The threads live in the same process as the flow, so they can share the already validated settings
objects (pydantic accepts a model instance without validating it again) and one API client (httpx clients are
thread-safe), which is what `hydrated_context` does when it is given one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.context import SettingsContext, hydrated_context, serialize_context

_lock = threading.Lock()
_shared: list[SyncPrefectClient] = []


def in_process_context() -> dict[str, Any]:
    """`serialize_context()`, with the settings context passed as objects instead of a dict to re-validate."""
    context = serialize_context()
    current = SettingsContext.get()
    if current is not None and context.get("settings_context"):
        context["settings_context"] = {"profile": current.profile, "settings": current.settings}
    return context


def _hydrated_with_shared_client(
    serialized_context: dict[str, Any] | None = None, client: Any = None
) -> AbstractContextManager[None]:
    with _lock:
        shared = _shared[-1] if _shared else None
    return hydrated_context(serialized_context, client=client or shared)


@contextmanager
def shared_client() -> Iterator[None]:
    """Within this block, prefect-dbt's threads reuse one API client made with the caller's settings."""
    client = get_client(sync_client=True)
    with _lock:
        _shared.append(client)
    try:
        yield
    finally:
        with _lock:
            _shared.remove(client)


def install() -> None:
    """Make prefect-dbt's runner and tracker use the cheaper hand-off (idempotent)."""
    from prefect_dbt.core import _tracker, runner

    runner.serialize_context = in_process_context
    runner.hydrated_context = _hydrated_with_shared_client
    _tracker.hydrated_context = _hydrated_with_shared_client
