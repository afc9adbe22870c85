"""Value parity over 200 relations and 10 M rows in two DuckDB databases, one value changed in one row.

Prints the fingerprint pass against a plain count(*) pass over the same relations in the same run (median of
--runs, each on fresh connections), the queries each pass issues per database, and what the drill-down names.
DuckDB answers count(*) of a table from its row-group metadata without reading a value, so the run also times
a pass that reads every compared column once (min() per column): the floor of any check of the data itself.
DuckDB 2.x answers a plain min() from column statistics too (the plan is a constant, no table scan), so that
pass runs with the `statistics_propagation` optimizer disabled; the statistics-answered pass is timed as well.

Run: .venv/bin/python bench/value_parity.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

from dbt2prefect.fingerprint_sql import quote
from dbt2prefect.warehouse import DuckDBWarehouse, Relation, RelationStats
from parity import synthetic as syn
from parity.artifacts import RunArtifacts, parse_manifest, parse_run_results
from parity.compare import JobInputs, compare_job
from parity.model import RunRef
from parity.rowcounts import relation_pairs
from parity.settings import ParitySettings, ValueSettings
from parity.values import fingerprint_specs, plan_values

RELATIONS = 200
ROWS = 50_000  # per relation: 10 M in all
SCHEMAS = 10
CHANGED_RELATION, CHANGED_ID = 137, 31_337


def build(path: Path, change: bool) -> None:
    with duckdb.connect(str(path)) as conn:
        for schema in range(SCHEMAS):
            conn.execute(f"create schema s{schema}")
        for index in range(RELATIONS):
            name = f"s{index % SCHEMAS}.m{index:04d}"
            conn.execute(
                f"create table {name} as select range as id, range % 1000 as customer_id, "
                f"(range * 0.37 + {index}) :: double as amount, cast(range * 7 % 100000 as decimal(18, 2)) as net, "
                "'sku-' || (range % 5000) as sku, date '2024-01-01' + (range % 365)::int as order_date "
                f"from range({ROWS})"
            )
        if change:
            conn.execute(
                f"update s{CHANGED_RELATION % SCHEMAS}.m{CHANGED_RELATION:04d} set amount = amount + 0.01 "
                f"where id = {CHANGED_ID}"
            )


def side(database: str) -> RunArtifacts:
    nodes = [
        syn.node(f"model.synthetic.m{i:04d}", database=database, schema=f"s{i % SCHEMAS}") for i in range(RELATIONS)
    ]
    statuses = {n["unique_id"]: "success" for n in nodes}
    return RunArtifacts(
        label=database,
        manifest=parse_manifest(syn.manifest(nodes)),
        run_results=parse_run_results(syn.run_results(statuses)),
    )


def scan_sql(described: dict[Relation, RelationStats]) -> str:
    """One UNION ALL reading every column of every relation once (the comparison pass of the benchmark)."""
    parts = []
    for index, stats in enumerate(described.values()):
        assert stats.located is not None
        table = ".".join(quote(p) for p in (stats.relation.database, *stats.located))
        mins = ", ".join(f"min({quote(name)})::varchar" for name, _ in stats.columns)
        parts.append(f"select {index} as idx, concat_ws(',', {mins}) as m from {table}")
    return "\nunion all\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    settings = ParitySettings(values=ValueSettings(keys={"m*": ["id"]}))
    base_art, cand_art = side("prod"), side("parity")
    pairs = relation_pairs(base_art, cand_art)
    with tempfile.TemporaryDirectory() as tmp:
        prod, parity = Path(tmp) / "prod.duckdb", Path(tmp) / "parity.duckdb"
        started = time.perf_counter()
        build(prod, change=False)
        build(parity, change=True)
        print(
            f"built 2 x {RELATIONS} relations, {RELATIONS * ROWS:,} rows each side in {time.perf_counter() - started:.1f} s"
        )
        counts, prints, scans, stats = [], [], [], []
        count_queries = print_queries = 0
        for run in range(runs):
            modes = ("count", "fingerprint", "scan", "stats")
            for mode in modes if run % 2 == 0 else tuple(reversed(modes)):
                with DuckDBWarehouse(prod) as base, DuckDBWarehouse(parity) as cand:
                    t0 = time.perf_counter()
                    base_desc = base.describe([p.baseline for p in pairs])
                    cand_desc = cand.describe([p.candidate for p in pairs])
                    if mode == "count":
                        base.measure(base_desc, {})
                        cand.measure(cand_desc, {})
                    elif mode in ("scan", "stats"):
                        for path, desc in ((prod, base_desc), (parity, cand_desc)):
                            with duckdb.connect(str(path), read_only=True) as conn:
                                if mode == "scan":
                                    conn.execute("set disabled_optimizers = 'statistics_propagation'")
                                conn.execute(scan_sql(desc)).fetchall()
                    else:
                        plans = plan_values(pairs, base_desc, cand_desc, settings, same_engine=True)
                        base_specs, cand_specs = fingerprint_specs(plans)
                        base.measure(base_desc, base_specs)
                        cand.measure(cand_desc, cand_specs)
                    elapsed = time.perf_counter() - t0
                    {"count": counts, "fingerprint": prints, "scan": scans, "stats": stats}[mode].append(elapsed)
                    if mode == "count":
                        count_queries = max(base.queries_issued, cand.queries_issued)
                    elif mode == "fingerprint":
                        print_queries = max(base.queries_issued, cand.queries_issued)
        inputs = JobInputs(
            1, base_art, RunRef(system="files", run_id="prod"), cand_art, RunRef(system="files", run_id="parity")
        )
        with DuckDBWarehouse(prod) as base, DuckDBWarehouse(parity) as cand:
            t0 = time.perf_counter()
            job = compare_job(inputs, settings, base, cand)
            whole = time.perf_counter() - t0
    count_s, print_s, scan_s = statistics.median(counts), statistics.median(prints), statistics.median(scans)
    stats_s = statistics.median(stats)
    differing = [row for row in job.value_checks if row.status.value == "different"]
    print(
        f"count(*) pass (describe + batched count):        {count_s:.3f} s median of {runs}, {count_queries} queries per database"
    )
    print(
        f"fingerprint pass (describe + count + fingerprint): {print_s:.3f} s median of {runs}, {print_queries} queries per database"
    )
    print(f"read-every-column pass (describe + min per column): {scan_s:.3f} s median of {runs}")
    print(f"min per column answered from statistics:         {stats_s:.3f} s median of {runs}")
    print(f"ratio fingerprint / count(*):                    {print_s / count_s:.2f}x")
    print(f"ratio fingerprint / read-every-column:           {print_s / scan_s:.2f}x")
    print(f"ratio fingerprint / min from statistics:         {print_s / stats_s:.2f}x")
    print(
        f"whole compare_job with drill-down:               {whole:.3f} s; pass queries {job.queries_issued}, drill-down {job.drill_down_queries}"
    )
    for row in differing:
        keys = [sample.key for sample in row.samples]
        print(f"differs: {row.unique_id} columns {row.differing_columns} keys {keys} ({row.note})")
    expected = (f"model.synthetic.m{CHANGED_RELATION:04d}", ["amount"], [{"id": str(CHANGED_ID)}])
    found = [(row.unique_id, row.differing_columns, [s.key for s in row.samples]) for row in differing]
    print(f"drill-down names the changed relation, column and key: {found == [expected]}")


if __name__ == "__main__":
    main()
