"""Generate a dbt project of N models with the tenant's shapes, for scale benchmarks.

Seeds feed staging views (one folder per domain, with not_null and unique tests), intermediate views join staging
models and each other (a DAG several levels deep), marts are tables per domain tagged like the tenant's (daily,
finance, weekly) with one incremental model, two snapshots, a singular test and selectors. DuckDB profiles with two
targets, `local` and `parity`, each its own database file under --warehouse.

Usage: .venv/bin/python bench/generate_project.py OUT --models 1000 [--warehouse DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

DOMAINS = ("sales", "finance", "supply_chain")
MART_TAGS = {"sales": ["daily"], "finance": ["daily", "finance"], "supply_chain": ["weekly"]}
SEED_ROWS = 20
PROFILE = "bench"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _yaml(path: Path, data: object) -> None:
    _write(path, yaml.safe_dump(data, sort_keys=False))


def layer_sizes(models: int) -> tuple[int, int, int]:
    """Staging, intermediate and mart counts (40 / 30 / 30 %) adding up to `models` (at least 6)."""
    if models < 6:
        raise ValueError(f"--models {models}: at least 6 (two models per layer)")
    staging = max(2, models * 4 // 10)
    intermediate = max(2, models * 3 // 10)
    return staging, intermediate, models - staging - intermediate


def generate(out: Path, models: int, warehouse: Path) -> dict[str, int]:
    """Write the project to `out` (which must not exist); returns the count of each kind of node."""
    out.mkdir(parents=True)
    n_stg, n_int, n_mart = layer_sizes(models)
    n_seed = max(3, models // 100)
    stg = [f"stg_{DOMAINS[i % 3]}__{i:05d}" for i in range(n_stg)]
    ints = [f"int_{i:05d}" for i in range(n_int)]
    marts = [f"fct_{DOMAINS[i % 3]}_{i:05d}" for i in range(n_mart - 1)] + ["fct_incremental_events"]

    _yaml(
        out / "dbt_project.yml",
        {
            "name": PROFILE,
            "version": "1.0.0",
            "config-version": 2,
            "profile": PROFILE,
            "models": {
                PROFILE: {
                    "+materialized": "view",
                    "staging": {"+schema": "staging", "+tags": ["daily"]},
                    "intermediate": {"+schema": "intermediate", "+tags": ["daily"]},
                    "marts": {
                        "+materialized": "table",
                        **{d: {"+schema": f"marts_{d}", "+tags": MART_TAGS[d]} for d in DOMAINS},
                    },
                }
            },
            "seeds": {PROFILE: {"+schema": "seeds", "+tags": ["daily"]}},
            "snapshots": {PROFILE: {"+tags": ["daily"]}},
        },
    )
    for s in range(n_seed):
        rows = ["id,group_id,amount,name,updated_at"]
        rows += [f"{r},{r % 4},{(r * 7 + s) % 100 + 1}.5,item {r},2024-01-{r % 28 + 1:02d}" for r in range(SEED_ROWS)]
        _write(out / "seeds" / f"seed_{s:03d}.csv", "\n".join(rows) + "\n")

    for i, name in enumerate(stg):
        _write(
            out / "models" / "staging" / DOMAINS[i % 3] / f"{name}.sql",
            f"select id, group_id, amount * {i % 5 + 1} as amount, name, cast(updated_at as date) as updated_at\n"
            f"from {{{{ ref('seed_{i % n_seed:03d}') }}}}\n",
        )
    tests = [{"name": "id", "data_tests": ["not_null", "unique"]}]
    _yaml(
        out / "models" / "staging" / "_staging.yml",
        {"version": 2, "models": [{"name": n, "columns": tests} for n in stg]},
    )

    for j, name in enumerate(ints):
        left = stg[j % n_stg]
        # Every third model builds on an earlier intermediate model: the DAG gets deeper as it grows.
        right = ints[j // 2] if j % 3 == 0 and j > 0 else stg[(j * 7 + 3) % n_stg]
        _write(
            out / "models" / "intermediate" / f"{name}.sql",
            "select l.id, l.group_id, l.amount + coalesce(r.amount, 0) as amount, l.updated_at\n"
            f"from {{{{ ref('{left}') }}}} as l\nleft join {{{{ ref('{right}') }}}} as r on l.id = r.id\n",
        )
    _yaml(
        out / "models" / "intermediate" / "_intermediate.yml",
        {"version": 2, "models": [{"name": n, "columns": [{"name": "id", "data_tests": ["not_null"]}]} for n in ints]},
    )

    for k, name in enumerate(marts[:-1]):
        _write(
            out / "models" / "marts" / DOMAINS[k % 3] / f"{name}.sql",
            "select group_id, count(*) as rows_in_group, sum(amount) as amount\n"
            f"from {{{{ ref('{ints[k % n_int]}') }}}}\ngroup by group_id\n",
        )
    _write(
        out / "models" / "marts" / "sales" / "fct_incremental_events.sql",
        "{{ config(materialized='incremental', unique_key='id') }}\n"
        f"select id, group_id, amount, updated_at from {{{{ ref('{ints[0]}') }}}}\n"
        "{% if is_incremental() %}\n"
        "where updated_at >= (select coalesce(max(updated_at), date '1900-01-01') from {{ this }})\n"
        "{% endif %}\n",
    )
    _yaml(
        out / "models" / "marts" / "_marts.yml",
        {
            "version": 2,
            "models": [
                {"name": n, "columns": [{"name": "group_id", "data_tests": ["not_null", "unique"]}]} for n in marts[:-1]
            ]
            + [{"name": marts[-1], "columns": [{"name": "id", "data_tests": ["not_null"]}]}],
        },
    )
    _write(
        out / "tests" / "assert_amounts_are_positive.sql",
        f"select * from {{{{ ref('{marts[0]}') }}}} where amount <= 0\n",
    )
    _yaml(
        out / "snapshots" / "snapshots.yml",
        {
            "snapshots": [
                {
                    "name": f"snap_{stg[i]}",
                    "relation": f"ref('{stg[i]}')",
                    "config": {
                        "schema": "snapshots",
                        "unique_key": "id",
                        "strategy": "timestamp",
                        "updated_at": "updated_at",
                    },
                }
                for i in range(2)
            ]
        },
    )
    _yaml(
        out / "selectors.yml",
        {
            "selectors": [
                {"name": "nightly", "definition": {"method": "tag", "value": "daily"}},
                {"name": "finance", "definition": {"method": "tag", "value": "finance"}},
                {
                    "name": "weekly_marts",
                    "definition": {
                        "intersection": [
                            {"method": "tag", "value": "weekly"},
                            {"method": "path", "value": "models/marts"},
                        ]
                    },
                },
            ]
        },
    )
    warehouse = warehouse.resolve()
    warehouse.mkdir(parents=True, exist_ok=True)
    outputs = {
        target: {"type": "duckdb", "path": str(warehouse / f"{target}.duckdb"), "threads": 4, "schema": "main"}
        for target in ("local", "parity")
    }
    _yaml(out / "profiles" / "profiles.yml", {PROFILE: {"target": "local", "outputs": outputs}})
    data_tests = 2 * n_stg + n_int + 2 * (n_mart - 1) + 1 + 1
    return {"models": len(stg) + len(ints) + len(marts), "seeds": n_seed, "snapshots": 2, "tests": data_tests}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="project folder to create")
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--warehouse", type=Path, default=None, help="DuckDB folder (default OUT/warehouse)")
    args = parser.parse_args()
    counts = generate(args.out, args.models, args.warehouse or args.out / "warehouse")
    print(", ".join(f"{n} {kind}" for kind, n in counts.items()), f"in {args.out}")


if __name__ == "__main__":
    main()
