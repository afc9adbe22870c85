"""The body of `run_dbt_wg`: validate, build the profile, run dbt, publish the summary, store the artifacts.

Kept out of `flows/` so the flow file stays an entrypoint; everything here is plain Python that the flow calls.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from dbt2prefect import exception_task_runs, node_view, state_task_runs
from dbt2prefect.artifact_store import DBT_LOG, RUN_FILES, ArtifactStore, RunKey, WriterRecord
from dbt2prefect.dbt_packages import prepared_project_in_place
from dbt2prefect.dbt_run import (
    Invoker,
    RunPaths,
    StepOutcome,
    attempt_results,
    failure_message,
    lean_invoker,
    prefect_invoker,
    run_invocations,
    transient_cause,
)
from dbt2prefect.errors import ParameterError
from dbt2prefect.node_budget import NodeBudget
from dbt2prefect.params import BUILDING, Invocation, RunParameters, plan_invocations, step_targets
from dbt2prefect.profiles import anchor_duckdb_paths, private_profiles_dir, profile_from_block, profile_from_local
from dbt2prefect.run_env import environment, run_environment
from dbt2prefect.summary import RunSummary, summarize
from dbt2prefect.tenant import REPO_ROOT, TenantSettings

if TYPE_CHECKING:
    from dbt2prefect.prefect_gateway import PrefectGateway

PROGRESS = "progress.json"
KEEP_FAILED_RUNS = 10
"""Working folders of failed runs kept for debugging (and for the flow's retry); older ones are removed."""


def runs_root() -> Path:
    """Folder for the private working folders of runs (`$DBT2PREFECT_RUNS_DIR`, else the system temp dir)."""
    return Path(os.environ.get("DBT2PREFECT_RUNS_DIR") or Path(tempfile.gettempdir()) / "dbt2prefect-runs")


def package_cache_dir() -> Path:
    """Where installed dbt packages are kept between runs, by the package files that asked for them."""
    return runs_root() / "packages"


def parse_cache_dir(project_dir: Path, target: str) -> Path:
    """Where partial parse results of one project and target are kept between runs."""
    digest = hashlib.sha256(str(project_dir).encode()).hexdigest()[:16]
    return runs_root() / "parse-cache" / f"{digest}-{target}"


def prune_failed_runs(keep: int = KEEP_FAILED_RUNS, current: str | None = None) -> list[Path]:
    """Remove the working folders of all but the `keep` newest failed runs; return what was removed.

    Successful runs remove their own folder; only failed ones stay, for a person to debug and for the retry.
    """
    root = runs_root()
    if not root.is_dir():
        return []
    # A failed run's folder holds PROGRESS; running runs' folders do not, and are never touched.
    folders = [p for p in root.iterdir() if p.name != current and (p / PROGRESS).is_file()]
    folders.sort(key=lambda p: (p / PROGRESS).stat().st_mtime, reverse=True)
    removed = folders[keep:]
    for folder in removed:
        shutil.rmtree(folder, ignore_errors=True)
    return removed


@dataclass(frozen=True)
class RunOutcome:
    """What a run did and where its artifacts are."""

    flow_run_id: str
    target: str
    summary: RunSummary
    artifact_dir: str | None
    failure: str | None

    @property
    def success(self) -> bool:
        return self.failure is None

    @property
    def attempts(self) -> list[dict[str, Any]]:
        """The failed attempts of this flow run, first first (empty when dbt passed at once)."""
        return self.summary.attempts

    @property
    def note(self) -> str | None:
        """What the run's state message adds to its verdict: the failed attempts before a success."""
        if not self.attempts or self.failure is not None:
            return None
        return f"succeeded on attempt {len(self.attempts) + 1} after {describe_attempts(self.attempts)}"


def describe_attempts(attempts: list[dict[str, Any]]) -> str:
    """One line per failed attempt: its number, its failure and whether it was transient (hence retried)."""
    return "; ".join(
        f"attempt {a['attempt']} failed"
        + (f" (transient: {a['transient']}, retried automatically)" if a.get("retried") else "")
        + f": {a['failure']}"
        for a in attempts
    )


def resolve_project_dir(params: RunParameters, tenant: TenantSettings) -> Path:
    project = Path(params.project_dir).expanduser() if params.project_dir else tenant.project_dir
    if not (project / "dbt_project.yml").is_file():
        raise ParameterError(
            f"parameter 'project_dir': {project} holds no dbt_project.yml; point it at a dbt project folder"
        )
    return project.resolve()


def resolve_state(
    params: RunParameters, tenant: TenantSettings, target: str, run_root: Path, store: ArtifactStore
) -> str | None:
    """The local state folder for `--state`, downloading the latest successful run from `store` when asked."""
    if not params.state_path:
        return None
    if params.state_path == "latest":
        key = store.latest(tenant.name, tenant.deployment_name, target)
        if key is None:
            raise ParameterError(
                f"parameter 'state_path': no successful run of {tenant.deployment_name} on target {target!r} "
                "is stored yet; run once without state_path first"
            )
        return str(store.download(key, run_root / "state"))
    folder = Path(params.state_path).expanduser()
    if not (folder / "manifest.json").is_file():
        raise ParameterError(
            f"parameter 'state_path': {folder} holds no manifest.json; give a folder of dbt artifacts or 'latest'"
        )
    return str(folder.resolve())


def build_profile(
    params: RunParameters, tenant: TenantSettings, target: str, connection: str, project_dir: Path
) -> dict[str, Any]:
    """The profile: `connection`'s output (block or local file), under the target name `target`.

    A relative DuckDB path in a local profiles.yml points into `project_dir`, as for bare dbt run there.
    """
    if params.profiles_strategy == "local":
        if tenant.local_profiles_dir is None:
            raise ParameterError("parameter 'profiles_strategy': 'local' needs local_profiles_dir in tenant settings")
        local = profile_from_local(tenant.local_profiles_dir, tenant.profile_name, connection)
        profile = anchor_duckdb_paths(local, project_dir)
        if connection == target:
            return profile
        body = profile[tenant.profile_name]
        return {tenant.profile_name: {**body, "target": target, "outputs": {target: body["outputs"][connection]}}}
    return profile_from_block(tenant.profile_name, target, tenant.block_name(connection))


def connect_step_targets(profile: dict[str, Any], profile_name: str, target: str, names: set[str]) -> dict[str, Any]:
    """The profile with only the run's connection, under `target` and under every target name a step sets.

    As in dbt Cloud, a step's `--target` changes target.name, never the connection: without this, a local
    profiles.yml would connect the step to that output, and a block profile would not know the name.
    """
    body = profile[profile_name]
    output = body["outputs"][body.get("target", target)]
    outputs = {name: dict(output) for name in sorted({target, *names})}
    return {profile_name: {**body, "target": target, "outputs": outputs}}


def _progress(run_root: Path, run_count: int) -> dict[str, Any] | None:
    """What the previous attempts of this flow run left: the failed step and the attempts' failures."""
    progress = run_root / PROGRESS
    if run_count <= 1 or not progress.is_file():
        return None
    try:
        data = json.loads(progress.read_text(encoding="utf-8"))
        int(data["failed_step"])
        attempts = [dict(a) for a in data.get("attempts", [])]
        if not attempts and isinstance(data.get("first_failure"), str):  # left by a version without attempts
            attempts = [{"attempt": 1, "failure": data["first_failure"], "transient": None, "retried": False}]
        if not all(isinstance(a.get("failure"), str) for a in attempts):
            raise TypeError("attempts")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # damaged: run from the start, which is always correct, only slower
    return {**data, "attempts": attempts}


def _stage_artifacts(outcomes: list[StepOutcome], staging: Path, log_path: Path) -> None:
    """Put the run's main artifacts side by side: the last building step's, plus catalog, sources and dbt.log."""
    staging.mkdir(parents=True, exist_ok=True)
    if (log_path / DBT_LOG).is_file():
        shutil.copyfile(log_path / DBT_LOG, staging / DBT_LOG)
    main = [o for o in outcomes if o.command in BUILDING and (o.target_path / "run_results.json").is_file()]
    chosen = main[-1] if main else (outcomes[-1] if outcomes else None)
    if chosen is not None:
        for name in ("manifest.json", "run_results.json"):
            if (chosen.target_path / name).is_file():
                shutil.copyfile(chosen.target_path / name, staging / name)
        for path in attempt_results(chosen.target_path):
            shutil.copyfile(path, staging / path.name)
    for outcome in outcomes:
        for name in ("catalog.json", "sources.json"):
            if (outcome.target_path / name).is_file():
                shutil.copyfile(outcome.target_path / name, staging / name)


READ_ONLY_COMMANDS = frozenset(
    {"test", "ls", "list", "compile", "docs", "source", "deps", "clean", "parse", "debug", "show"}
)
"""dbt commands that write no relation (`docs generate` and `source freshness` only read)."""
WRITER_EXPIRY_SECONDS = 12 * 3600
"""A run without timeout_seconds that never reported its end (a killed worker) counts as writing this long."""
KNOWN_WRITERS = frozenset({"build", "run", "seed", "snapshot", "retry"})


def _writes(command: str) -> bool:
    return (command.split() or [""])[0] not in READ_ONLY_COMMANDS


def written_nodes(outcomes: list[StepOutcome]) -> frozenset[str] | None:
    """The nodes whose relations the run's steps wrote; None when a step may have written anything
    (`run-operation`: a macro can write any relation)."""
    nodes: set[str] = set()
    for outcome in outcomes:
        if not _writes(outcome.command):
            continue
        if outcome.command not in KNOWN_WRITERS:
            return None
        nodes |= {n.unique_id for n in outcome.nodes if n.resource_type != "test" and n.status != "skipped"}
    return frozenset(nodes)


def _attempts(
    invocations: list[Invocation],
    paths: RunPaths,
    invoke: Invoker,
    tenant: TenantSettings,
    resume: int | None,
    attempts: list[dict[str, Any]],
    on_retry: Callable[[dict[str, Any]], None] | None,
) -> tuple[list[dict[str, Any]], list[StepOutcome], str | None]:
    """Run the invocations, retrying transient failures; return the failed attempts, the steps and the failure.

    The steps of a retried run are the earlier steps as the first attempt left them plus the retry's; the
    retried step's run results cover every node of every attempt (see `merge_retry_results`).
    """
    start_at, retry_first = resume or 0, resume is not None
    outcomes: list[StepOutcome] = []
    retries = 0
    while True:
        ran = run_invocations(invocations, paths, invoke, start_at=start_at, retry_first=retry_first)
        outcomes = [o for o in outcomes if o.index < start_at] + ran
        failure = failure_message(outcomes)
        if failure is None:
            return attempts, outcomes, None
        cause = transient_cause(outcomes)
        will_retry = cause is not None and retries < tenant.retries.transient
        attempt = {"attempt": len(attempts) + 1, "failure": failure, "transient": cause, "retried": will_retry}
        attempts.append(attempt)
        if not will_retry:
            return attempts, outcomes, failure
        if on_retry is not None:
            on_retry(attempt)
        retries += 1
        time.sleep(tenant.retries.delay_seconds)
        start_at, retry_first = next(o.index for o in outcomes if not o.success and o.fails_run), True


def execute(
    params: RunParameters,
    tenant: TenantSettings,
    flow_run_id: str,
    run_count: int = 1,
    invoker: Invoker | None = None,
    on_retry: Callable[[dict[str, Any]], None] | None = None,
    *,
    store: ArtifactStore,
    prefect: PrefectGateway | None = None,
    deployment_run: bool = False,
) -> RunOutcome:
    """Run the dbt invocations that the parameters ask for and store their artifacts in `store` (the tenant's
    run-artifact store).

    A failure whose every cause is transient (`transient_cause`) is retried from the point of failure with
    `dbt retry`, up to `[tenant.retries] transient` times, `on_retry` being told of each failed attempt first;
    any other failure ends the run. Every attempt's failure stays in the run record and the summary.

    With `per_node_tasks`, nodes get task runs as `node_task_runs` (else the tenant's) says: "all" while dbt runs
    (`prefect_invoker`); "states" while dbt runs in lean mode, recorded from dbt's events in the flow run
    `flow_run_id` through `prefect` (see `dbt2prefect.state_task_runs`); "exceptions" after dbt has run in lean
    mode, recorded the same way (see `dbt2prefect.exception_task_runs`); without `prefect`, the last two record
    none. "auto" is resolved to one of them from the project's node count before dbt runs
    (`dbt2prefect.node_view`), and the summary says which.

    In a `deployment_run` the project folder is usually a checkout made for this run alone (the clone of the
    deployment's pull step, in a new folder each time), so dbt runs in a private copy in a folder of the runs
    directory that stays the same from run to run (see `prepared_project_in_place`): a worker that keeps its folder
    parses partially from its second run of the project on, and keeps one saved parse per project and target, not
    one per run.

    Raises:
        ParameterError: a parameter is wrong in a way only visible now (project dir, state, target).
        ProfileError: the target's profile could not be built.
    """
    target = params.target or tenant.default_target
    # The connection (profile block) and the stored runs belong to the environment; target is only target.name.
    connection = params.connection or target
    if connection not in tenant.targets:
        name = "connection" if params.connection else "target"
        raise ParameterError(
            f"parameter {name!r}: {connection!r} is not one of {', '.join(tenant.targets)}"
            + ("" if params.connection else f"; pass `connection` to run target.name {target!r} on one of them")
        )
    project_dir = resolve_project_dir(params, tenant)
    variables = run_environment(params)  # before dbt starts: a missing Secret block is bad input
    run_root = runs_root() / flow_run_id
    run_root.mkdir(parents=True, exist_ok=True)
    prune_failed_runs(current=flow_run_id)
    state_dir = resolve_state(params, tenant, connection, run_root, store)
    invocations = plan_invocations(params, target, state_dir)
    previous = _progress(run_root, run_count)
    resume = int(previous["failed_step"]) if previous is not None else None
    profile = connect_step_targets(
        build_profile(params, tenant, target, connection, project_dir),
        tenant.profile_name,
        target,
        step_targets(params),
    )
    started = datetime.now(UTC)
    key = RunKey(tenant.name, tenant.deployment_name, connection, flow_run_id)
    writes = any(_writes(i.command) for i in invocations)
    writer = WriterRecord(
        flow_run_id,
        started,
        started + timedelta(seconds=params.timeout_seconds or WRITER_EXPIRY_SECONDS),
        job_id=params.dbt_cloud_job_id,
    )
    if writes:  # before dbt connects: parity must see a run that is writing the database now
        store.record_writer(key, writer)
    observability = tenant.observability
    budget = NodeBudget(observability.logs_events_per_minute) if params.per_node_tasks else None
    view = None
    if params.per_node_tasks:
        requested = params.node_task_runs or observability.node_task_runs
        count = node_view.project_node_count(project_dir) if requested == "auto" else None
        view = node_view.resolve(
            params.node_task_runs,
            observability.node_task_runs,
            count,
            lambda: state_task_runs.budget(observability)[0].per_minute,
        )
    mode = view.mode if view is not None else None
    budget_setting = None
    recording = None
    if invoker is not None:
        invoke = invoker
    elif budget is None or mode == "exceptions" or (mode == "states" and prefect is None):
        invoke = lean_invoker
    elif mode == "states" and prefect is not None:
        budget, budget_setting = state_task_runs.budget(observability)
        recording = exception_task_runs.Recording()
        states = state_task_runs.writer(prefect, UUID(flow_run_id))
        invoke = functools.partial(state_task_runs.states_invoker, writer=states, budget=budget, recording=recording)
    else:
        invoke = functools.partial(prefect_invoker, budget=budget)
    # dbt deps empties the install path: packages go into a private copy, never the team's folder.
    with (
        prepared_project_in_place(
            project_dir, runs_root() / "projects", package_cache_dir(), copy=deployment_run
        ) as dbt_project,
        private_profiles_dir(profile) as profiles_dir,
        environment(variables),
    ):
        paths = RunPaths(
            root=run_root,
            project_dir=dbt_project,
            profiles_dir=profiles_dir,
            # dbt's saved parse names the project's absolute path: kept per folder dbt runs in (the team's, or a
            # private copy's, which stays the same from run to run).
            parse_cache=parse_cache_dir(dbt_project, connection if connection == target else f"{connection}-{target}"),
        )
        try:
            attempts, outcomes, failure = _attempts(
                invocations, paths, invoke, tenant, resume, list(previous["attempts"]) if previous else [], on_retry
            )
        except BaseException:
            if writes:  # it wrote an unknown part of the database
                store.record_writer(key, replace(writer, finished_at=datetime.now(UTC), status="crashed"))
            raise
    if failure is not None:
        failed = next(o.index for o in outcomes if not o.success and o.fails_run)
        # The first failure is the cause; a retry's own failure is reported after it, never instead of it.
        first = str(attempts[0]["failure"])
        if len(attempts) > 1 and first != failure:
            failure = f"{failure} (first attempt: {first})"
        progress = {"failed_step": failed, "first_failure": first, "attempts": attempts}
        (run_root / PROGRESS).write_text(json.dumps(progress), encoding="utf-8")
    failed_attempts = attempts if failure is None else attempts[:-1]
    recorded = None
    if mode == "exceptions" and budget is not None and prefect is not None:
        nodes = [node for outcome in outcomes for node in outcome.nodes]
        slow = observability.slow_node_seconds
        budget, budget_setting = exception_task_runs.budget(observability)
        recorded = exception_task_runs.record(prefect, UUID(flow_run_id), nodes, slow, budget)
    summary = summarize(
        target,
        outcomes,
        success=failure is None,
        attempts=failed_attempts,
        left_out=budget.left_out if budget is not None else None,
        budget=observability.logs_events_per_minute,
        budget_setting=budget_setting,
        exception_task_runs=recorded.count if recorded is not None else None,
        state_task_runs=recording.count if recording is not None else None,
        recording_failure=next((r.failure for r in (recorded, recording) if r is not None), None),
        slow_node_seconds=observability.slow_node_seconds if recorded is not None else None,
        node_view=view.describe() if view is not None else None,
    )
    staging = run_root / "artifacts"
    _stage_artifacts(outcomes, staging, paths.log_path)
    record = {
        "flow_run_id": flow_run_id,
        "tenant": tenant.name,
        "deployment": tenant.deployment_name,
        "target": target,
        "parameters": params.model_dump(),
        "success": failure is None,
        "failure": failure,
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "attempt": len(attempts) + (1 if failure is None else 0),
        "flow_run_count": run_count,
        "attempts": attempts,
        "summary": summary.to_record(),
        # The checkout this run's code was imported from: a worker's clone names what it ran.
        "code_root": str(REPO_ROOT),
    }
    kept = [path.name for path in attempt_results(staging)]
    artifact_dir = store.save_run(key, staging, record, files=[*RUN_FILES, *kept])
    if writes:
        finished = replace(
            writer,
            finished_at=datetime.now(UTC),
            status="success" if failure is None else "failed",
            nodes=written_nodes(outcomes),
        )
        store.record_writer(key, finished)
    if params.dbt_cloud_job_id is not None:
        store.mark_job_run(key, params.dbt_cloud_job_id)
    if failure is None:
        # Only a run with a manifest can serve as `state_path=latest` (not `dbt clean`, not an empty `dbt ls`).
        if (staging / "manifest.json").is_file():
            store.mark_latest(key)
        shutil.rmtree(run_root, ignore_errors=True)
    return RunOutcome(flow_run_id, target, summary, artifact_dir, failure)
