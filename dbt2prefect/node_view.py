"""Which node view a run uses (`node_task_runs`), and the automatic choice ("auto") by project size and budget.

"all" gives every dbt node a task run while dbt runs, through prefect-dbt's task engine, with asset events and each
node's log lines (`dbt2prefect.node_budget`; about `ALL_VIEW_EVENTS_PER_NODE` log lines and events per node);
"states" gives every node a task run recorded from dbt's events while it runs (`dbt2prefect.state_task_runs`;
1 event per node, counted as 2); "exceptions" runs dbt as in the lean mode and then records task runs only for the
nodes that failed, warned or were slow (`dbt2prefect.exception_task_runs`). "auto" is resolved once per run, before
dbt runs, by `resolve`: "states" when the project's nodes times `RECORDED_COST` fit in that view's budget
(`dbt2prefect.state_task_runs.budget`), so that even a build whose every node ended in the same minute would keep
every task run, else "exceptions". "all" is there for whoever asks for it: it costs about 7 per node and 1.35x bare
dbt's time at 1,000 models (docs/performance.md), so the automatic choice never takes it.

The node count is the project's, estimated from its files by `project_node_count`: the run's selection is not known
before dbt parses the project, and a parse only for this would cost what the choice saves on a large project. So a
run that selects a few nodes of a large project resolves as its full build does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from dbt2prefect.dbt_packages import project_config
from dbt2prefect.exception_task_runs import RECORDED_COST
from dbt2prefect.params import NodeTaskRuns

ALL_VIEW_EVENTS_PER_NODE = 6.88
"""Log lines and events per node of the "all" view with every node given its task run: measured by
`bench/events_budget.py --models 300 --budget 40000` against a local Prefect server (815 nodes, 3,151 events and
2,458 log lines: 6.88 per node; 6.94 at 100 models), docs/performance.md, "Events and logs budget"."""

ResolvedView = Literal["all", "states", "exceptions"]

_SNAPSHOT_BLOCK = re.compile(r"{%-?\s*snapshot\s")
_TEST_KEYS = ("data_tests", "tests")


@dataclass(frozen=True)
class NodeView:
    """The node view a run uses, and why (`reason`, as the run's summary says it)."""

    mode: ResolvedView
    reason: str

    def describe(self) -> str:
        """`node view: <mode> (<reason>)`: the summary's line."""
        return f"node view: {self.mode} ({self.reason})"


def resolve(
    parameter: NodeTaskRuns | None,
    setting: NodeTaskRuns,
    nodes: int | None = None,
    budget: Callable[[], int] | None = None,
) -> NodeView:
    """The run's node view: the run's `node_task_runs` parameter, else the tenant's `setting`; "auto" compares
    `nodes` (the project's node count) times `RECORDED_COST` with the "states" view's `budget()` per minute (both
    needed only then), as the module says.

    Raises:
        ValueError: "auto" without a node count or a budget.
    """
    requested = parameter or setting
    if requested != "auto":
        source = "the run's parameter" if parameter is not None else "[tenant.observability]"
        return NodeView(requested, f'{source} node_task_runs = "{requested}"')
    if nodes is None or budget is None:
        raise ValueError('node_task_runs = "auto" needs the project\'s node count and the budget')
    limit = budget()
    fits = nodes * RECORDED_COST <= limit
    reason = f"auto: {nodes:,} nodes x {RECORDED_COST} {'<=' if fits else '>'} budget {limit:,} per minute"
    return NodeView("states" if fits else "exceptions", reason)


def _files(folders: Iterable[Path], suffixes: tuple[str, ...]) -> Iterator[Path]:
    for folder in folders:
        if folder.is_dir():
            yield from (p for p in folder.rglob("*") if p.suffix in suffixes and p.is_file())


def _tests(entry: Any) -> int:
    """The generic data tests declared on one YAML entry (a model, column, source table...)."""
    if not isinstance(entry, dict):
        return 0
    tests = next((entry[key] for key in _TEST_KEYS if key in entry), None)
    return len(tests) if isinstance(tests, list) else 0


def _with_columns(entry: Any) -> int:
    """The generic data tests of one entry and of its columns."""
    columns = entry.get("columns") if isinstance(entry, dict) else None
    return _tests(entry) + (sum(_tests(column) for column in columns) if isinstance(columns, list) else 0)


def _yaml_nodes(data: Any) -> int:
    """The generic data tests, unit tests and snapshots (those with a `relation`) a properties file declares."""
    if not isinstance(data, dict):
        return 0
    snapshots = data.get("snapshots")
    count = sum(1 for s in snapshots if isinstance(s, dict) and "relation" in s) if isinstance(snapshots, list) else 0
    for key in ("models", "seeds", "snapshots"):
        entries = data.get(key)
        count += sum(_with_columns(entry) for entry in entries) if isinstance(entries, list) else 0
    sources = data.get("sources")
    for source in sources if isinstance(sources, list) else []:
        tables = source.get("tables") if isinstance(source, dict) else None
        count += sum(_with_columns(table) for table in tables) if isinstance(tables, list) else 0
    unit_tests = data.get("unit_tests")
    return count + (len(unit_tests) if isinstance(unit_tests, list) else 0)


def project_node_count(project_dir: Path) -> int:
    """The nodes a full `dbt build` of the project at `project_dir` runs, estimated from its files without a parse:
    models (`.sql`, `.py`), seeds (`.csv`), snapshots (SQL blocks and YAML ones), singular tests (`.sql` in the test paths, outside
    `generic/`), and the generic data tests and unit tests of its YAML properties files. Installed packages' nodes,
    disabled nodes and tests added by a macro are not counted; a file that cannot be read counts none (dbt reports
    it).

    Raises:
        ConfigError: dbt_project.yml cannot be read as YAML.
    """
    config = project_config(project_dir)

    def folders(key: str, default: str) -> list[Path]:
        value = config.get(key)
        names = value if isinstance(value, list) and value else [default]
        return [project_dir / str(name) for name in names]

    model_paths = folders("model-paths", "models")
    seed_paths = folders("seed-paths", "seeds")
    snapshot_paths = folders("snapshot-paths", "snapshots")
    test_paths = folders("test-paths", "tests")
    count = sum(1 for _ in _files(model_paths, (".sql", ".py")))
    count += sum(1 for _ in _files(seed_paths, (".csv",)))
    for path in _files(snapshot_paths, (".sql",)):
        try:
            count += len(_SNAPSHOT_BLOCK.findall(path.read_text(encoding="utf-8", errors="replace")))
        except OSError:
            continue
    count += sum(
        1
        for folder in test_paths
        for path in _files([folder], (".sql",))
        if path.relative_to(folder).parts[0] != "generic"
    )
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for path in _files([*model_paths, *seed_paths, *snapshot_paths, *test_paths], (".yml", ".yaml")):
        try:
            count += _yaml_nodes(yaml.load(path.read_text(encoding="utf-8"), Loader=loader))  # a safe loader
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
    return count
