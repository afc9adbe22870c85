"""Run a list of dbt invocations in order, each with its own target path, and collect node results.

dbt runs in-process through prefect-dbt's `PrefectDbtRunner` (one Prefect task run per node inside a flow), or
through plain `dbtRunner` in lean mode (no per-node task runs; the summary is still built from run_results.json).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from dbt2prefect.errors import DbtInputError, DbtRunError
from dbt2prefect.gc_tuning import fewer_collections
from dbt2prefect.params import BUILDING, Invocation

if TYPE_CHECKING:
    from dbt2prefect.node_budget import NodeBudget

FAILED_STATUSES = {"error", "fail", "runtime error"}
WARN_STATUS = "warn"
"""The status of a data test or source freshness check that warned (dbt Cloud's run "succeeded with warnings")."""


@dataclass(frozen=True)
class NodeResult:
    """One node's outcome in one step."""

    unique_id: str
    resource_type: str
    name: str
    status: str
    execution_time: float
    message: str
    step: int
    relation: str | None = None


@dataclass
class StepOutcome:
    """What one invocation did."""

    index: int
    label: str
    command: str
    args: list[str]
    target_path: Path
    fails_run: bool
    success: bool = False
    error: str | None = None
    seconds: float = 0.0
    nodes: list[NodeResult] = field(default_factory=list)

    @property
    def failed_nodes(self) -> list[NodeResult]:
        return [node for node in self.nodes if node.status in FAILED_STATUSES]

    def to_record(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "label": self.label,
            "command": self.command,
            "args": self.args,
            "fails_run": self.fails_run,
            "success": self.success,
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "nodes": len(self.nodes),
        }


@dataclass(frozen=True)
class RunPaths:
    """Where one run keeps its files: its own folder, so concurrent runs never share a target path.

    `parse_cache` holds dbt's partial_parse.msgpack between runs of the same project and target: every run has a
    fresh target path, which would otherwise make dbt parse the whole project each time. dbt checks the file
    against the project, vars, profile and env vars itself and parses from scratch when anything changed.
    """

    root: Path
    project_dir: Path
    profiles_dir: Path
    parse_cache: Path | None = None

    def step_target(self, index: int) -> Path:
        return self.root / f"step-{index}"

    def step_of(self, target_path: Path) -> int:
        """The index of the step whose target path is `target_path` (the inverse of `step_target`)."""
        return int(target_path.name.removeprefix("step-"))

    @property
    def log_path(self) -> Path:
        return self.root / "logs"


Invoker = Callable[[list[str], RunPaths, Path], tuple[bool, str | None]]


def _dbt_output(path: Path) -> Any:
    """A JSON file dbt wrote for this run; damage to it is a failure of the run that names the file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DbtRunError(f"dbt's {path.name} of this run cannot be read ({path}): {exc}") from None


def _node_results(target_path: Path, step: int) -> list[NodeResult]:
    # `dbt source freshness` writes its results (pass, warn, error, runtime error) to sources.json, and no
    # run_results.json; every other command writes run_results.json.
    path = next((target_path / n for n in (RUN_RESULTS, "sources.json") if (target_path / n).is_file()), None)
    if path is None:
        return []
    data = _dbt_output(path)
    manifest_nodes: dict[str, Any] = {}
    manifest_path = target_path / "manifest.json"
    if manifest_path.is_file():
        manifest = _dbt_output(manifest_path)
        manifest_nodes = {**manifest.get("nodes", {}), **manifest.get("sources", {})}
    results = []
    for item in data.get("results", []):
        uid = str(item.get("unique_id", ""))
        node = manifest_nodes.get(uid, {})
        results.append(
            NodeResult(
                unique_id=uid,
                resource_type=str(node.get("resource_type") or uid.split(".", 1)[0]),
                name=str(node.get("name") or uid.rsplit(".", 1)[-1]),
                status=str(item.get("status", "")),
                execution_time=float(item.get("execution_time") or 0.0),
                message=str(item.get("message") or item.get("error") or ""),
                step=step,
                relation=node.get("relation_name"),
            )
        )
    return results


_INPUT_MESSAGES = ("Could not find selector named", "Could not read WritableManifest")
"""Starts of dbt's messages for input it refused that come as a plain runtime error."""


def check_input_error(args: list[str], exc: BaseException | None) -> None:
    """Raise DbtInputError when dbt's exception says its input is wrong: retrying cannot help, exit code 2.

    Only what dbt itself judges: its config errors (project, profile, selectors), its usage errors (such as
    `run-operation --args` that is not a YAML mapping), a state manifest that is not JSON or of an incompatible
    schema, an unknown selector. Anything else (a lock, a lost connection) stays a run failure.
    """
    if exc is None:
        return
    from dbt.artifacts.exceptions.schemas import IncompatibleSchemaError
    from dbt.cli.exceptions import DbtUsageException
    from dbt.exceptions import DbtConfigError, InvalidSelectorError

    message = str(getattr(exc, "msg", None) or exc).strip()
    judged = DbtConfigError | DbtUsageException | IncompatibleSchemaError | InvalidSelectorError
    if isinstance(exc, judged) or message.startswith(_INPUT_MESSAGES):
        raise DbtInputError(f"dbt refused `dbt {' '.join(args)}`: {' '.join(message.split())}")


def dbt_log_level() -> str:
    """dbt's name for Prefect's logging level (prefect-dbt's own mapping fails on WARNING and CRITICAL)."""
    from prefect.settings import get_current_settings

    level = str(get_current_settings().logging.level).upper()
    return {"DEBUG": "debug", "INFO": "info", "WARNING": "warn", "ERROR": "error", "CRITICAL": "error"}.get(
        level, "info"
    )


@dataclass
class _Signal:
    received: bool = False


SIGTERM_REPEAT_SECONDS = 1.0
"""How often SIGTERM is raised again while dbt has not stopped after the first one."""


def _ended(inside: threading.Event, seconds: float) -> bool:
    """Wait `seconds`; True when the guarded block has ended meanwhile."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not inside.is_set():
            return True
        time.sleep(0.05)
    return not inside.is_set()


@contextlib.contextmanager
def stop_dbt_on_sigterm() -> Iterator[_Signal]:
    """While dbt runs in this process, SIGTERM reaches it as Ctrl-C, then goes on to the handler it replaced.

    On Ctrl-C dbt cancels its open queries, stops its thread pool and writes run_results.json; any other exception
    (Prefect's TerminationSignal for a cancelled or terminated run) leaves dbt's pool building the remaining nodes
    while the process winds down. Once dbt has stopped, the signal is raised again for the previous handler
    (Prefect's, which reports the run, or the default, which ends the process). Outside the main thread, where no
    handler can be set, dbt runs as it would without this.
    """
    signal_state = _Signal()
    inside = threading.Event()
    repeaters: list[threading.Thread] = []
    main = threading.main_thread().ident or 0

    def again() -> None:
        # A KeyboardInterrupt that lands in code catching it (a callback, a logging handler) is lost, and dbt's
        # pool would go on building: it comes again every second until the block has ended. It is sent to the
        # main thread: there it ends a blocking wait (dbt's queue join), while a signal raised in this thread
        # would wait for the main thread to wake on its own, after the whole build.
        while not _ended(inside, SIGTERM_REPEAT_SECONDS):
            signal.pthread_kill(main, signal.SIGTERM)

    def interrupt(signum: int, frame: FrameType | None) -> None:
        if not inside.is_set():
            return  # the block is ending: its `finally` passes the signal on once, after the repeats have stopped
        if not signal_state.received:
            signal_state.received = True
            repeater = threading.Thread(target=again, name="dbt2prefect-sigterm", daemon=True)
            repeaters.append(repeater)
            repeater.start()
        elif isinstance(sys.exc_info()[1], KeyboardInterrupt):
            return  # dbt is handling the first one (writing its results, cancelling its queries): let it finish
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread
        yield signal_state
        return
    inside.set()
    try:
        yield signal_state
    finally:
        inside.clear()
        # A repeat raised after the check would reach the restored handler as a second Ctrl-C, at any point of
        # the caller's clean-up: the repeats end before the handler is put back.
        for repeater in repeaters:
            repeater.join(timeout=SIGTERM_REPEAT_SECONDS + 1)
        signal.signal(signal.SIGTERM, previous)
        if signal_state.received:
            signal.raise_signal(signal.SIGTERM)
            raise KeyboardInterrupt  # the previous handler ignored it: the run still stops here


def prefect_invoker(
    args: list[str], paths: RunPaths, target_path: Path, budget: NodeBudget | None = None
) -> tuple[bool, str | None]:
    """Invoke dbt through PrefectDbtRunner: per-node task runs and assets inside a flow.

    With a `budget`, only the nodes it admits get a task run and forward their dbt log lines (see
    `dbt2prefect.node_budget`); the budget records the others.
    """
    from dbt_common.events.base_types import EventLevel
    from prefect_dbt import PrefectDbtRunner, PrefectDbtSettings

    from dbt2prefect import node_budget, node_states, prefect_context

    # No-ops where they were not written for the installed versions: prefect-dbt's own code then runs.
    prefect_context.install()
    node_states.install()  # a warned node's task run ends "Warned", a failed node's without a traceback
    node_budget.install()

    settings = PrefectDbtSettings(
        project_dir=paths.project_dir,
        profiles_dir=paths.profiles_dir,
        target_path=target_path,
        log_level=EventLevel(dbt_log_level()),
    )
    runner = PrefectDbtRunner(settings=settings, raise_on_failure=False)
    before = set(threading.enumerate())
    with (
        prefect_context.shared_client(),
        node_budget.limiting(budget),
        fewer_collections(),
        stop_dbt_on_sigterm() as stopped,
    ):
        try:
            result = runner.invoke([*args, "--log-path", str(paths.log_path)])
        except ValueError as exc:
            return False, str(exc)
        finally:
            # Inside the block: the threads use the shared client until they end (stopped: only briefly).
            _join_task_threads(before, timeout=5.0 if stopped.received else 120.0)
    check_input_error(args, result.exception)
    return bool(result.success), None if result.exception is None else str(result.exception)


def _join_task_threads(before: set[threading.Thread], timeout: float = 120.0) -> None:
    """Wait for the runner's per-node task threads to report their final states.

    The runner starts one daemon thread per node and returns before they finish; a thread still running when
    the interpreter exits aborts the process, and a flow that ends first leaves task runs without a final state.
    """
    deadline = time.monotonic() + timeout
    for thread in set(threading.enumerate()) - before:
        if thread.name.endswith("(run_task)"):
            thread.join(max(0.0, deadline - time.monotonic()))


def lean_invoker(
    args: list[str], paths: RunPaths, target_path: Path, callbacks: Sequence[Callable[[Any], None]] = ()
) -> tuple[bool, str | None]:
    """Invoke dbt directly (no per-node task runs): the lean mode; `callbacks` hear dbt's events (in dbt's
    threads)."""
    from dbt.cli.main import dbtRunner

    full = [
        *args,
        "--project-dir", str(paths.project_dir),
        "--profiles-dir", str(paths.profiles_dir),
        "--target-path", str(target_path),
        "--log-path", str(paths.log_path),
    ]  # fmt: skip
    with fewer_collections(), stop_dbt_on_sigterm():
        result = dbtRunner(callbacks=list(callbacks)).invoke(full)
    check_input_error(args, result.exception)
    return bool(result.success), None if result.exception is None else str(result.exception)


def run_invocations(
    invocations: list[Invocation],
    paths: RunPaths,
    invoke: Invoker,
    start_at: int = 0,
    retry_first: bool = False,
) -> list[StepOutcome]:
    """Run invocations in order and stop at the first failure of one that fails the run.

    Args:
        invocations: the planned dbt invocations.
        paths: the run's private folders.
        invoke: `prefect_invoker` or `lean_invoker`.
        start_at: index of the first invocation to run (a flow retry resumes at the failed one).
        retry_first: run `dbt retry` in place of the first invocation (rerun from the point of failure) when
            that invocation left run results; otherwise run it again.
    """
    outcomes: list[StepOutcome] = []
    paths.log_path.mkdir(parents=True, exist_ok=True)
    for index, invocation in enumerate(invocations):
        if index < start_at:
            continue
        target_path = paths.step_target(index)
        args = invocation.args
        label = invocation.label
        # `dbt retry` needs the failed attempt's run_results.json; a step that failed before dbt wrote it (a
        # lock, a missing state manifest, a lost connection) is run again as it was.
        retrying = (
            retry_first
            and index == start_at
            and invocation.command in BUILDING
            and (target_path / RUN_RESULTS).is_file()
        )
        before = None
        if retrying:
            args = ["retry", *_target_flag(invocation.args)]
            label = f"dbt retry ({invocation.label})"
            before = keep_attempt_results(target_path)
        outcome = StepOutcome(index, label, invocation.command, args, target_path, invocation.fails_run)
        _restore_parse(paths.parse_cache, target_path)
        started = time.perf_counter()
        if invocation.command == "clean":
            # dbt clean deletes the project's clean-targets (target/, logs/, ...), which other runs share and
            # this run never writes: clean what is this run's own instead, its earlier steps' target paths.
            outcome.success, outcome.error = _clean_run_folders(paths, index), None
        else:
            outcome.success, outcome.error = invoke(args, paths, target_path)
        outcome.seconds = time.perf_counter() - started
        _keep_parse(paths.parse_cache, target_path)
        if before is not None:
            merge_retry_results(before, target_path)
        outcome.nodes = _node_results(target_path, index)
        outcomes.append(outcome)
        if not outcome.success and invocation.fails_run:
            break
    return outcomes


PARTIAL_PARSE = "partial_parse.msgpack"
RUN_RESULTS = "run_results.json"
ATTEMPT_RESULTS = "run_results.attempt-{}.json"
"""Each attempt's own run_results.json of a step that `dbt retry` reran, kept next to the merged one."""


def attempt_results(target_path: Path) -> list[Path]:
    """The per-attempt run results of a step, oldest first (none when the step ran once)."""
    found = []
    number = 1
    while (target_path / ATTEMPT_RESULTS.format(number)).is_file():
        found.append(target_path / ATTEMPT_RESULTS.format(number))
        number += 1
    return found


def keep_attempt_results(target_path: Path) -> Path:
    """Set the step's run results aside before `dbt retry` overwrites them; the first attempt's are kept for good."""
    if not attempt_results(target_path):
        shutil.copyfile(target_path / RUN_RESULTS, target_path / ATTEMPT_RESULTS.format(1))
    before = target_path / f".{RUN_RESULTS}.before-retry"
    shutil.copyfile(target_path / RUN_RESULTS, before)
    return before


def merge_retry_results(before: Path, target_path: Path) -> None:
    """Make the step's run_results.json cover every node of every attempt after `dbt retry`.

    dbt retry writes only the nodes it reran: the nodes that passed before would be missing from the run's
    artifacts. The merged file holds the earlier attempts' result of each node the retry did not rerun, then
    the retry's results (with its metadata and args); each attempt's own file stays next to it
    (`run_results.attempt-<n>.json`), so which attempt a result came from stays visible.
    """
    latest = target_path / RUN_RESULTS
    try:
        if not latest.is_file() or latest.read_bytes() == before.read_bytes():
            return  # dbt retry failed before writing results: the earlier file is still the latest
        earlier, retried = _dbt_output(before), _dbt_output(latest)
        shutil.copyfile(latest, target_path / ATTEMPT_RESULTS.format(len(attempt_results(target_path)) + 1))
        rerun = {item.get("unique_id") for item in retried.get("results", [])}
        kept = [item for item in earlier.get("results", []) if item.get("unique_id") not in rerun]
        merged = {
            **retried,
            "results": [*kept, *retried.get("results", [])],
            "elapsed_time": float(earlier.get("elapsed_time") or 0.0) + float(retried.get("elapsed_time") or 0.0),
        }
        temporary = target_path / f".{RUN_RESULTS}.merged"
        temporary.write_text(json.dumps(merged), encoding="utf-8")
        os.replace(temporary, latest)
    finally:
        before.unlink(missing_ok=True)


def _clean_run_folders(paths: RunPaths, index: int) -> bool:
    for earlier in range(index):
        shutil.rmtree(paths.step_target(earlier), ignore_errors=True)
    return True


def _restore_parse(cache: Path | None, target_path: Path) -> None:
    if cache is not None and (cache / PARTIAL_PARSE).is_file():
        target_path.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cache / PARTIAL_PARSE, target_path / PARTIAL_PARSE)


def _keep_parse(cache: Path | None, target_path: Path) -> None:
    """Store the step's partial parse file for the next run (atomic replace: concurrent runs may race)."""
    source = target_path / PARTIAL_PARSE
    if cache is None or not source.is_file():
        return
    cache.mkdir(parents=True, exist_ok=True)
    temporary = cache / f".{PARTIAL_PARSE}.{os.getpid()}.{threading.get_ident()}"
    shutil.copyfile(source, temporary)
    os.replace(temporary, cache / PARTIAL_PARSE)


def _target_flag(args: list[str]) -> list[str]:
    for flag in ("--target", "-t"):
        if flag in args:
            position = args.index(flag)
            return [flag, args[position + 1]]
    return []


def failure_message(outcomes: list[StepOutcome]) -> str | None:
    """A message naming the failed step and nodes, or None when the run succeeded."""
    for outcome in outcomes:
        if outcome.success or not outcome.fails_run:
            continue
        failed = outcome.failed_nodes
        if failed:
            names = ", ".join(f"{node.unique_id} ({node.status}: {node.message[:200]})" for node in failed)
            return f"step {outcome.index} `{outcome.label}` failed: {names}"
        return f"step {outcome.index} `{outcome.label}` failed: {outcome.error or 'dbt reported failure'}"
    return None


TRANSIENT_CAUSES: dict[str, tuple[str, ...]] = {
    "lock": (
        "could not set lock on file",
        "conflicting lock is held",
        "deadlock detected",
        "lock wait timeout",
        "could not obtain lock",
        "due to lock timeout",
        "number of waiters for this lock exceeds",
        "has locked table",
        "could not serialize access",
        "transaction conflict",
    ),
    "lost connection": (
        "connection reset",
        "connection refused",
        "connection aborted",
        "broken pipe",
        "server closed the connection unexpectedly",
        "ssl syscall error",
        "remote end closed connection",
        "could not connect to snowflake backend",
        "terminating connection due to administrator command",
        "connection already closed",
        "network is unreachable",
        "temporary failure in name resolution",
        "session no longer exists",
        "authentication token has expired",
    ),
    "timeout": (
        "statement reached its statement or warehouse timeout",
        "canceling statement due to statement timeout",
        "query execution timed out",
        "read timed out",
        "connection timed out",
    ),
}
"""What dbt's messages say when a failure may pass on a second try without anyone changing anything: a lock
held by another writer, a dropped connection, a statement or warehouse timeout (DuckDB, Snowflake, Postgres,
Redshift, BigQuery and their drivers' wording). Matched in lower case anywhere in the message."""


def _cause(message: str) -> str | None:
    text = " ".join(message.lower().split())
    return next((cause for cause, marks in TRANSIENT_CAUSES.items() if any(m in text for m in marks)), None)


def transient_cause(outcomes: list[StepOutcome]) -> str | None:
    """Why a failed run may pass on a second try ('lock', 'lost connection', 'timeout'), or None.

    Only when every failure of the failed step is transient: one compilation or SQL error, one failing test, a
    node that errored for any other reason, or an error dbt raised that names no transient cause makes the
    failure deterministic, and a second try would pass only because the first one changed the warehouse.
    """
    failed = next((o for o in outcomes if not o.success and o.fails_run), None)
    if failed is None:
        return None
    nodes = failed.failed_nodes
    if any(node.status == "fail" for node in nodes):
        return None  # a data test found rows: the data, not the infrastructure
    messages = [node.message for node in nodes]
    if failed.error or not nodes:
        messages.append(failed.error or "")  # what dbt raised (a lock at connect time leaves no node results)
    causes = {_cause(message) for message in messages}
    if None in causes:
        return None
    return ", ".join(sorted(c for c in causes if c is not None))


def raise_for_failure(outcomes: list[StepOutcome], log_path: Path) -> None:
    message = failure_message(outcomes)
    if message:
        raise DbtRunError(f"{message}. dbt log: {log_path / 'dbt.log'}")
