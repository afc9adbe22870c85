"""Builders of synthetic dbt artifacts (manifest, run_results, catalog dicts) for tests and benchmarks.

The shapes follow dbt 1.11's manifest v12 / run-results v6 / catalog v1, restricted to fields parity reads
plus a realistic amount of text per node (raw code), so size-based benchmarks are meaningful.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MANIFEST_V = "https://schemas.getdbt.com/dbt/manifest/v12.json"
RUN_RESULTS_V = "https://schemas.getdbt.com/dbt/run-results/v6.json"
CATALOG_V = "https://schemas.getdbt.com/dbt/catalog/v1.json"


def node(
    unique_id: str,
    *,
    materialized: str = "table",
    database: str = "prod",
    schema: str = "marts",
    depends_on: Iterable[str] = (),
    tags: Iterable[str] = (),
    enabled: bool = True,
    raw_code: str = "select 1 as id",
    original_file_path: str | None = None,
) -> dict[str, Any]:
    """One manifest node; resource type and name come from the unique_id (`model.pkg.name`)."""
    resource_type, package, name = unique_id.split(".", 2)
    name = name.split(".")[0]
    return {
        "unique_id": unique_id,
        "resource_type": resource_type,
        "name": name,
        "package_name": package,
        "database": database,
        "schema": schema,
        "alias": name,
        "relation_name": f'"{database}"."{schema}"."{name}"',
        "original_file_path": original_file_path or f"models/{name}.sql",
        "raw_code": raw_code,
        "tags": list(tags),
        "config": {"enabled": enabled, "materialized": materialized, "tags": list(tags)},
        "checksum": {"name": "sha256", "checksum": "0" * 64},
        "depends_on": {"nodes": list(depends_on), "macros": []},
    }


def manifest(
    nodes: Iterable[Mapping[str, Any]],
    disabled: Iterable[Mapping[str, Any]] = (),
    sources: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """A manifest dict holding the given enabled nodes, disabled nodes and sources."""
    return {
        "metadata": {"dbt_schema_version": MANIFEST_V, "dbt_version": "1.11.0", "project_name": "synthetic"},
        "nodes": {n["unique_id"]: dict(n) for n in nodes},
        "sources": {s["unique_id"]: dict(s) for s in sources},
        "disabled": {d["unique_id"]: [dict(d)] for d in disabled},
        "exposures": {},
        "metrics": {},
        "parent_map": {},
        "child_map": {},
    }


def run_results(
    statuses: Mapping[str, str], which: str = "build", times: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """A run_results dict with one result per unique_id (execution time 1.0 s unless given)."""
    times = dict(times or {})
    results: list[dict[str, Any]] = [
        {
            "unique_id": uid,
            "status": status,
            "execution_time": times.get(uid, 1.0),
            "timing": [],
            "message": None,
            "failures": 0 if status in ("pass", "success") else None,
            "adapter_response": {},
            "thread_id": "Thread-1",
        }
        for uid, status in statuses.items()
    ]
    return {
        "metadata": {"dbt_schema_version": RUN_RESULTS_V, "dbt_version": "1.11.0"},
        "results": results,
        "elapsed_time": sum(times.get(uid, 1.0) for uid in statuses),
        "args": {"which": which},
    }


def catalog(tables: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """A catalog dict: unique_id -> {column: type}."""
    return {
        "metadata": {"dbt_schema_version": CATALOG_V, "dbt_version": "1.11.0"},
        "nodes": {
            uid: {
                "unique_id": uid,
                "metadata": {"type": "BASE TABLE", "schema": "marts", "name": uid.rsplit(".", 1)[-1]},
                "columns": {c: {"name": c, "type": t, "index": i} for i, (c, t) in enumerate(cols.items(), 1)},
                "stats": {},
            }
            for uid, cols in tables.items()
        },
        "sources": {},
        "errors": None,
    }


def large_project(
    models: int, tests_per_model: int = 1, database: str = "prod"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A manifest and a successful build's run_results with `models` models in a layered DAG plus tests."""
    nodes: list[dict[str, Any]] = []
    statuses: dict[str, str] = {}
    code = (
        "select o.id, o.amount, c.name from {{ ref('stg_orders') }} o join {{ ref('stg_customers') }} c using (id)\n"
        * 8
    )
    for index in range(models):
        uid = f"model.synthetic.m{index:05d}"
        parents = [f"model.synthetic.m{p:05d}" for p in (index // 2, index // 3) if p < index]
        nodes.append(
            node(
                uid,
                database=database,
                schema=f"s{index % 20}",
                depends_on=parents,
                tags=[f"t{index % 7}"],
                raw_code=code,
            )
        )
        statuses[uid] = "success"
        for t in range(tests_per_model):
            test_id = f"test.synthetic.not_null_m{index:05d}_c{t}.{index:010x}"
            nodes.append(
                node(
                    test_id, materialized="test", database=database, depends_on=[uid], raw_code="{{ test_not_null() }}"
                )
            )
            statuses[test_id] = "pass"
    return manifest(nodes), run_results(statuses)
