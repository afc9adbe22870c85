"""The final state of prefect-dbt's per-node task runs: a node that warned is told apart, a failed node is data.

prefect-dbt's `PrefectDbtRunner` makes one task run per dbt node, whose function (`execute_dbt_node`) waits for the
node to finish and raises when dbt reports a failure. A warned data test or freshness check therefore ends
`Completed` like the nodes that passed, and a failed one ends `Failed` with a Python traceback in the run's logs.

`install()` replaces that function with `execute_dbt_node`, which runs prefect-dbt's own and then returns
- `Completed(name="Warned")` for a node that warned, with the node and dbt's message as the state message,
- `Failed` for a node that failed in dbt, without a traceback (the dbt failure is not a crash; dbt logs its error),
- nothing otherwise, as prefect-dbt's own does.
The state types stay prefect-dbt's (a warned node is Completed, a failed node Failed); only the warned state's name
and the failed state's message and log differ. The replacement is made only on the versions it was written for
(`WRITTEN_FOR`) and while the name holds prefect-dbt's own function (see `dbt2prefect.compat`).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from dbt2prefect.compat import Target, applies
from dbt2prefect.dbt_run import FAILED_STATUSES, WARN_STATUS

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State

WRITTEN_FOR = {"prefect": "3.9.", "prefect-dbt": "0.7.25"}
WARNED_STATE = "Warned"
"""The name of the Completed state of a node that warned."""
MESSAGE_CHARACTERS = 500
"""dbt's message is cut to this many characters in a task run's state message."""

_lock = threading.Lock()
_stock: list[Callable[..., Any]] = []
"""prefect-dbt's own `execute_dbt_node` while the replacement is installed (empty: not installed)."""


def node_state(node_id: str, finished: Mapping[str, Any] | None) -> State[Any] | None:
    """The state a node's task run ends in, from prefect-dbt's record of its NodeFinished event; None: the default.

    `finished` holds the event's data (`node_info`, `run_result`) and dbt's log line (`event_message`).
    """
    from prefect.states import Completed, Failed

    if not finished:
        return None
    data = finished.get("event_data") or {}
    status = str((data.get("node_info") or {}).get("node_status") or "")
    if status != WARN_STATUS and status not in FAILED_STATUSES:
        return None
    if status != WARN_STATUS:
        # dbt logs its error, and the run's state message holds it: Prefect logs a task run's final state twice,
        # which would repeat it.
        return Failed(message=f"{node_id} {status} in dbt (its error is in the run's logs and state message)")
    said = str((data.get("run_result") or {}).get("message") or finished.get("event_message") or "")
    return Completed(name=WARNED_STATE, message=state_message(node_id, status, said))


def state_message(node_id: str, status: str, said: str) -> str:
    """`<node> <status>: <dbt's message on one line, cut to MESSAGE_CHARACTERS>` (no message: without the colon)."""
    said = " ".join(said.split())[:MESSAGE_CHARACTERS]
    return f"{node_id} {status}" + (f": {said}" if said else "")


def execute_dbt_node(task_state: Any, node_id: str, asset_id: str | None) -> State[Any] | None:
    """prefect-dbt's `execute_dbt_node` (it waits for the node and records its asset), ending in `node_state`."""
    stock = _stock[0] if _stock else _prefect_dbt_function()
    try:
        stock(task_state, node_id, asset_id)
    except Exception:
        state = node_state(node_id, task_state.get_node_status(node_id))
        if state is None or not state.is_failed():
            raise  # not the failure of a dbt node: prefect-dbt's own error stands
        return state
    return node_state(node_id, task_state.get_node_status(node_id))


def _prefect_dbt_function() -> Callable[..., Any]:
    from prefect_dbt.core import runner

    return runner.execute_dbt_node  # type: ignore[no-any-return]


def _targets() -> list[Target]:
    from prefect_dbt.core import _tracker, runner

    return [Target(runner, "execute_dbt_node"), Target(_tracker.NodeTaskTracker, "get_node_status")]


def install() -> bool:
    """Make prefect-dbt's node task runs end in `node_state` (idempotent); False, and no change, where it does
    not apply."""
    from prefect_dbt.core import runner

    with _lock:
        if _stock:
            return True
        if not applies("node_states", WRITTEN_FOR, _targets):
            return False
        stock = runner.execute_dbt_node
        if getattr(stock, "__module__", None) != runner.__name__:
            return False  # another replacement holds the name: leave it

        @functools.wraps(stock)
        def replacement(task_state: Any, node_id: str, asset_id: str | None) -> State[Any] | None:
            return execute_dbt_node(task_state, node_id, asset_id)

        # The task keeps prefect-dbt's name, parameters and task key (Prefect derives it from this source).
        replacement.__prefect_task_source__ = stock  # type: ignore[attr-defined]
        _stock.append(stock)
        runner.execute_dbt_node = replacement
    return True


def uninstall() -> None:
    """Put prefect-dbt's own `execute_dbt_node` back (the stock path)."""
    from prefect_dbt.core import runner

    with _lock:
        if _stock:
            runner.execute_dbt_node = _stock.pop()
