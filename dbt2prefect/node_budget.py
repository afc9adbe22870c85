"""Keep a run's per-node task runs and log lines under the workspace's logs + events budget.

Prefect Cloud counts every log line and every event of an account in one per-minute bucket
(`[tenant.observability] logs_events_per_minute`). prefect-dbt's `PrefectDbtRunner` gives each dbt node a task run,
which sends its state changes (Pending, Running, Completed) and asset events as events, plus the node's dbt log
lines and the task engine's own: `node_cost` per node (bench/events_budget.py measures them), `START_COST` of them
when the node starts and the rest when it ends.

While dbt runs, a node that starts is admitted to a task run only if what the run sent in the last 60 s, plus what
the admitted nodes still running will send when they end, plus this node's whole cost, stays within the budget less
`FLOW_RESERVE`. Any 60 s window then holds at most the budget: at its last admission everything the window will
hold was counted (its earlier sends, and the ends of the nodes then running). A node that is not admitted runs in
dbt as any other, without a task run and without forwarding its dbt log lines (as prefect-dbt treats an ephemeral
model); its status is in the run's node table and summary, its lines in dbt.log.

Admission replaces `PrefectDbtRunner._call_task`, and the end of a node is heard through prefect-dbt's
`NodeTaskTracker.set_node_status`; both are replaced only on the versions they were written for (`WRITTEN_FOR`) and
while the names hold prefect-dbt's own functions (see `dbt2prefect.compat`). Elsewhere every node gets its task
run, as without a budget.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from dbt2prefect.compat import Target, applies

WRITTEN_FOR = {"prefect": "3.9.", "prefect-dbt": "0.7.25"}
START_COST = 3
"""Sent when a node's task run starts: its Pending and Running events and dbt's START line."""
NODE_COST = 6
"""Log lines and events of one node's task run: 3 task-run state events and 3 log lines (dbt's START and OK lines,
the task engine's final state); `node_cost` adds a node's asset events (measured: 6.9 per node on average at 100
and 300 models, docs/performance.md)."""
ASSET_NODES = frozenset({"model", "seed", "snapshot"})
"""Nodes whose task run materializes an asset: one materialization event and one reference event per upstream node."""
FLOW_RESERVE = 100
"""Room kept for the flow run's own lines and events (about 25 per run) and a retry's."""
WINDOW_SECONDS = 60.0

_lock = threading.Lock()
_stock: dict[str, Callable[..., Any]] = {}
"""prefect-dbt's own functions while the replacements are installed (empty: not installed)."""
_active: list[NodeBudget] = []


class NodeBudget:
    """Which nodes get a task run: as many as fit under `per_minute` log lines and events (thread-safe)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.allowance = max(0, per_minute - FLOW_RESERVE)
        """What the nodes' task runs may send in any 60 s."""
        self._clock = clock
        self._sent: deque[tuple[float, int]] = deque()
        self._running: dict[str, int] = {}
        """Admitted nodes still running -> what they send when they end."""
        self._lock = threading.Lock()
        self.admitted = 0
        self.left_out: list[str] = []
        """The nodes that ran without a task run, in the order they started."""

    def _window(self, now: float) -> int:
        while self._sent and now - self._sent[0][0] >= WINDOW_SECONDS:
            self._sent.popleft()
        return sum(cost for _, cost in self._sent)

    def admit(self, unique_id: str, cost: int = NODE_COST) -> bool:
        """Whether the node that starts now, whose task run sends `cost` lines and events, gets its task run and
        log lines; a node left out is remembered."""
        with self._lock:
            now = self._clock()
            pending = sum(self._running.values())
            if self._window(now) + pending + cost <= self.allowance:
                self._sent.append((now, min(cost, START_COST)))
                self._running[unique_id] = max(0, cost - START_COST)
                self.admitted += 1
                return True
            self.left_out.append(unique_id)
            return False

    def finished(self, unique_id: str) -> None:
        """An admitted node has ended: the rest of its cost is sent now."""
        with self._lock:
            if unique_id in self._running:
                self._sent.append((self._clock(), self._running.pop(unique_id)))


def node_cost(manifest_node: Any) -> int:
    """The log lines and events of a dbt node's task run (a manifest node): `NODE_COST`, plus for a node that
    builds a relation its asset's materialization event and one reference event per upstream node (an upper bound:
    prefect-dbt references upstream models, seeds, snapshots and sources)."""
    if str(getattr(manifest_node, "resource_type", "")) not in ASSET_NODES or not getattr(
        manifest_node, "relation_name", None
    ):
        return NODE_COST
    upstream = getattr(getattr(manifest_node, "depends_on", None), "nodes", None) or []
    return NODE_COST + 1 + len(upstream)


def _budget() -> NodeBudget | None:
    with _lock:
        return _active[-1] if _active else None


def _call_task(self: Any, task_state: Any, manifest_node: Any, context: Any, enable_assets: bool) -> Any:
    """prefect-dbt's `_call_task` for a node the active budget admits; nothing for one it leaves out."""
    from prefect_dbt.core.runner import PrefectDbtRunner

    stock = _stock.get("_call_task", PrefectDbtRunner._call_task)
    budget = _budget()
    unique_id = str(manifest_node.unique_id)
    # The runner's own sets of skipped and started nodes, read by its callbacks: without them, the stock path.
    known = all(isinstance(getattr(self, name, None), set) for name in ("_skipped_nodes", "_started_nodes"))
    if budget is None or not known or budget.admit(unique_id, node_cost(manifest_node)):
        return stock(self, task_state, manifest_node, context, enable_assets)
    # As prefect-dbt treats an ephemeral model: no task run, and the node's log lines are not forwarded.
    self._skipped_nodes.add(unique_id)
    self._started_nodes.discard(unique_id)
    return None


def _set_node_status(self: Any, node_id: str, event_data: Any, event_message: str) -> None:
    """prefect-dbt's `NodeTaskTracker.set_node_status` (a node has finished), telling the active budget."""
    from prefect_dbt.core._tracker import NodeTaskTracker

    _stock.get("set_node_status", NodeTaskTracker.set_node_status)(self, node_id, event_data, event_message)
    budget = _budget()
    if budget is not None:
        budget.finished(node_id)


def _targets() -> list[Target]:
    from prefect_dbt.core._tracker import NodeTaskTracker
    from prefect_dbt.core.runner import PrefectDbtRunner

    return [Target(PrefectDbtRunner, "_call_task"), Target(NodeTaskTracker, "set_node_status")]


_REPLACEMENTS: dict[str, Callable[..., Any]] = {"_call_task": _call_task, "set_node_status": _set_node_status}


def install() -> bool:
    """Make prefect-dbt's runner ask the active budget before each node's task run (idempotent); False, and no
    change, where it does not apply."""
    with _lock:
        if _stock:
            return True
        if not applies("node_budget", WRITTEN_FOR, _targets):
            return False
        targets = _targets()
        if any(getattr(getattr(t.module, t.name), "__module__", None) == __name__ for t in targets):
            return False  # already replaced by another copy of this module: leave it
        for target in targets:
            _stock[target.name] = getattr(target.module, target.name)
            setattr(target.module, target.name, _REPLACEMENTS[target.name])
    return True


def uninstall() -> None:
    """Put prefect-dbt's own functions back (the stock path: every node gets its task run)."""
    with _lock:
        for target in _targets() if _stock else []:
            setattr(target.module, target.name, _stock.pop(target.name))


@contextmanager
def limiting(budget: NodeBudget | None) -> Iterator[None]:
    """Within this block, prefect-dbt's runner admits nodes to task runs by `budget` (None: every node)."""
    if budget is None:
        yield
        return
    with _lock:
        _active.append(budget)
    try:
        yield
    finally:
        with _lock:
            _active.remove(budget)
