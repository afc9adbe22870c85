"""Row-count parity over 1,000 relations in two synthetic DuckDB databases: queries per database and time.

Run: .venv/bin/python bench/rowcount_parity.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import duckdb

from dbt2prefect.warehouse import DuckDBWarehouse, Relation
from parity import synthetic as syn
from parity.artifacts import RunArtifacts, parse_manifest, parse_run_results
from parity.rowcounts import compare_row_counts, count_pairs, relation_pairs
from parity.settings import ParitySettings

RELATIONS = 1000
VIEWS_EVERY = 5  # every 5th relation is a view


def build(path: Path, drift: int) -> None:
    with duckdb.connect(str(path)) as conn:
        for schema in range(20):
            conn.execute(f"create schema s{schema}")
        for index in range(RELATIONS):
            name = f"s{index % 20}.m{index:05d}"
            rows = 100 + index % 50 + (drift if index == 7 else 0)
            if index % VIEWS_EVERY == 0:
                conn.execute(f"create view {name} as select range as id from range({rows})")
            else:
                conn.execute(f"create table {name} as select range as id from range({rows})")


def side(database: str) -> RunArtifacts:
    nodes = [
        syn.node(
            f"model.synthetic.m{i:05d}",
            database=database,
            schema=f"s{i % 20}",
            materialized="view" if i % VIEWS_EVERY == 0 else "table",
        )
        for i in range(RELATIONS)
    ]
    statuses = {n["unique_id"]: "success" for n in nodes}
    return RunArtifacts(
        label=database,
        manifest=parse_manifest(syn.manifest(nodes)),
        run_results=parse_run_results(syn.run_results(statuses)),
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        build(Path(tmp) / "prod.duckdb", 0)
        build(Path(tmp) / "parity.duckdb", -3)
        pairs = relation_pairs(side("prod"), side("parity"))
        base, cand = DuckDBWarehouse(Path(tmp) / "prod.duckdb"), DuckDBWarehouse(Path(tmp) / "parity.duckdb")
        started = time.perf_counter()
        base_stats, cand_stats = count_pairs(pairs, base, cand)
        rows, findings = compare_row_counts(pairs, base_stats, cand_stats, ParitySettings())
        elapsed = time.perf_counter() - started
        base.close()
        cand.close()
    differing = [r.unique_id for r in rows if r.status.value != "equal"]
    assert isinstance(pairs[0].baseline, Relation)
    print(f"relations compared:          {len(rows)} ({RELATIONS // VIEWS_EVERY} views)")
    print(f"queries, baseline database:  {base.queries_issued}")
    print(f"queries, candidate database: {cand.queries_issued}")
    print(f"time:                        {elapsed:.2f} s")
    print(f"relations that differ:       {differing} ({len(findings)} finding)")


if __name__ == "__main__":
    main()
