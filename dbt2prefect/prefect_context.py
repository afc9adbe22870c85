"""Cheaper Prefect context hand-off for prefect-dbt's per-node task threads.

`PrefectDbtRunner.invoke` serialises the Prefect context once and every per-node thread rebuilds it with
`hydrated_context`, which re-validates the complete Prefect `Settings` model from a dict several times per node.
That re-validation (pydantic-settings reads the environment for ~50 nested models each time) was most of the
per-node overhead measured in bench/flow_overhead.py. The threads live in the same process, so they can share
the already validated settings objects: pydantic accepts a model instance without validating it again.
"""

from __future__ import annotations

from typing import Any

from prefect.context import SettingsContext, serialize_context


def in_process_context() -> dict[str, Any]:
    """`serialize_context()`, with the settings context passed as objects instead of a dict to re-validate."""
    context = serialize_context()
    current = SettingsContext.get()
    if current is not None and context.get("settings_context"):
        context["settings_context"] = {"profile": current.profile, "settings": current.settings}
    return context


def install() -> None:
    """Make prefect-dbt's runner hand its threads the in-process context (idempotent)."""
    from prefect_dbt.core import runner

    runner.serialize_context = in_process_context
