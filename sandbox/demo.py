"""The migration performed end to end on the sandbox, one typed step result at a time.

`run_demo()` tells an observer when each step starts and how it ended; the CLI (`dbt2prefect demo`) only renders
those results. The story: raw data → the sandbox dbt Cloud API and a real Prefect server → the dbt Cloud baseline
jobs → a process worker in a folder of its own → export → plan → apply (deployment with code storage and one
schedule per job) → candidate deployment runs of each job's schedule parameters on the `parity` target, executed
by the worker → parity → cutover → one activated schedule fires and the worker runs it → each cut-over job that
others are chained to runs, and the triggers start the chained jobs, run by the worker → status → rollback → status.
Then the parallel-run period of one job: dbt Cloud runs it, each completed run's signed webhook becomes a Prefect
event whose trigger starts the shadow deployment on the worker (the run's twin on the parity target, and the
comparison of that pair) → the streak of PASS pairs → cutover, refused before the streak and allowed after it →
a broken change after cutover makes the job's next run fail → the guard rolls the job back and tells its
destinations.
Everything lives in one work folder that is emptied first, so a rerun starts clean.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from app.workspace import Workspace
from dbt2prefect.errors import ConfigError, Dbt2PrefectError
from dbt2prefect.tenant import REPO_ROOT, TenantSettings
from sandbox.code_remote import CodeRemote
from sandbox.dbt_cloud import SandboxDbtCloud
from sandbox.notification_sink import NotificationSink, register_notification_blocks
from sandbox.runs import DeploymentRun
from sandbox.s3_api import BUCKET, S3Api
from sandbox.stack import (
    PrefectServer,
    SandboxStack,
    StackPaths,
    load_raw_data,
    make_code_remote,
    prefect_api,
    prepare_workdir,
    register_profile_blocks,
    save_secret_blocks,
    start_dbt_cloud,
    start_object_storage,
    write_tenant_file,
)

DEFAULT_WORKDIR = REPO_ROOT / ".dbt2prefect" / "demo"

RUN_TIMEOUT = 900.0
"""How long a deployment run may take on a busy machine before the step fails."""

CHAIN_START_TIMEOUT = 120.0
NOTIFY_TIMEOUT = 120.0
"""How long the demo waits for a notification an automation owes (the server's actions service sends it)."""
"""How long a chained job's trigger may take to start its run after the upstream run ended."""

SUCCESS = 10
DEMO_USER = "dbt2prefect demo"
"""Who the demo's cutover and rollback records name in the ledger."""

DEMO_SHADOW = {"enabled": True, "required_passes": 2, "required_days": 0, "guarded_runs": 3, "guard_action": "rollback"}
"""The demo tenant's `[tenant.shadow]` (with `jobs`, its one shadowed job): the fewest runs that show a streak, a
window of a few days shrunk to none, and a guard that rolls back."""
TOKEN_BLOCK = "dbt-cloud-token"
WEBHOOK_SECRET_BLOCK = "dbt-cloud-webhook-secret"
"""The Secret blocks the demo saves when the tenant names none: the flows on the worker read dbt Cloud's token and
the webhook's secret from them (the worker's environment has neither)."""
BROKEN_MODEL = "models/demo_broken_change.sql"
"""The broken change the demo pushes after cutover (in the tenant's dbt project in the code remote): a model that
refers to a model that does not exist, so every dbt command of the project fails."""


class StepStatus(StrEnum):
    """How a step ended."""

    OK = "ok"
    FAILED = "failed"


@dataclass(frozen=True)
class StepResult:
    """One step of the story: its outcome, a one-line summary, the time it took and what it produced.

    `value` is the library object of the step (GenerationResult, MigrationPlan, ApplyDiff, ParityOutcome, ...).
    """

    key: str
    title: str
    status: StepStatus
    summary: str
    seconds: float
    value: Any = None


@dataclass(frozen=True)
class WorkerRun:
    """A deployment run that the sandbox's worker executed, with its place in the Prefect UI."""

    job_id: int
    run: DeploymentRun
    ui_url: str


@dataclass(frozen=True)
class ChainedRun:
    """A run of a chained job that its trigger started after a run of its upstream job ended; both by the worker."""

    trigger: str
    upstream: WorkerRun
    run: WorkerRun


@dataclass(frozen=True)
class BaselineRun:
    """One dbt Cloud run of a baseline job."""

    job_id: int
    job_name: str
    run_id: int
    status: int
    steps: list[tuple[str, int]]

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCESS


@dataclass(frozen=True)
class ParityOutcome:
    """The parity report and where its files are."""

    report: Any  # parity.model.ParityReport (typed loosely so this module imports pandas-free)
    folder: Path
    html: Path
    stored: str = ""
    """The report's folder in the tenant's report root (object storage), which cutover reads."""


@dataclass(frozen=True)
class ShadowFeed:
    """How completed dbt Cloud runs reach Prefect in the demo: the webhook subscription and its stand-in endpoint."""

    job_id: int
    subscription_id: str
    endpoint: str
    shadow_deployment: str


@dataclass(frozen=True)
class ShadowedRun:
    """A dbt Cloud run of the shadowed job, the shadow flow run its event started, and the pair recorded."""

    dbt_cloud_run_id: int
    shadow_run: WorkerRun
    pair: Any  # parity.shadow.ShadowPair
    refused: str | None = None
    """What cutover said after this pair, while the streak was still short (None once it was long enough)."""


@dataclass(frozen=True)
class GuardOutcome:
    """The failed run after cutover, the guard's run it started, and what the guard left behind."""

    failed: WorkerRun
    guard_run: DeploymentRun
    records: list[Any]  # migration.ledger.LedgerRecord, the job's
    status: Any  # migration.status.JobStatus of the job after the guard
    notification: dict[str, Any]
    change: str


class DemoObserver(Protocol):
    """What the CLI implements to show progress."""

    def started(self, key: str, title: str) -> None: ...

    def finished(self, result: StepResult) -> None: ...


class _Silent:
    def started(self, key: str, title: str) -> None:
        return None

    def finished(self, result: StepResult) -> None:
        return None


class StepFailed(Exception):
    """A step ended without the expected result (not a bug): the message is the one-line summary."""

    def __init__(self, summary: str, value: Any = None) -> None:
        super().__init__(summary)
        self.value = value


@dataclass
class DemoResult:
    """Every step's result; with `keep`, the still-running stack (call `close()` to stop it)."""

    workdir: Path
    steps: list[StepResult] = field(default_factory=list)
    seconds: float = 0.0
    stack: SandboxStack | None = None
    _closer: contextlib.ExitStack | None = None

    @property
    def failed(self) -> StepResult | None:
        """The first failed step, if any."""
        return next((step for step in self.steps if step.status is StepStatus.FAILED), None)

    @property
    def ok(self) -> bool:
        return self.failed is None

    def step(self, key: str) -> StepResult:
        return next(step for step in self.steps if step.key == key)

    def close(self) -> None:
        """Stop the servers a `keep=True` demo left running."""
        if self._closer is not None:
            self._closer.close()
            self._closer = None
            self.stack = None


class _Runner:
    """Runs steps in order, timing each and turning failures into FAILED results; stops after a failure."""

    def __init__(self, observer: DemoObserver, result: DemoResult) -> None:
        self.observer = observer
        self.result = result

    def step(self, key: str, title: str, action: Callable[[], tuple[str, Any]]) -> Any:
        self.observer.started(key, title)
        started = time.monotonic()
        try:
            summary, value = action()
            status = StepStatus.OK
        except StepFailed as exc:
            summary, value, status = str(exc), exc.value, StepStatus.FAILED
        except Dbt2PrefectError as exc:
            summary, value, status = f"{type(exc).__name__}: {exc}", None, StepStatus.FAILED
        except Exception as exc:  # any failure ends the story with the failing step named, not a traceback
            summary, value, status = f"{type(exc).__name__}: {exc}", None, StepStatus.FAILED
        outcome = StepResult(key, title, status, summary, time.monotonic() - started, value)
        self.result.steps.append(outcome)
        self.observer.finished(outcome)
        if status is StepStatus.FAILED:
            raise _Stop
        return value


class _Stop(Exception):
    """Internal: a step failed; the story ends there."""


# ------------------------------------------------------------------------------------------------ steps


def _raw_data(paths: StackPaths, tenant: TenantSettings) -> tuple[str, Any]:
    loader = tenant.sandbox.raw_loader
    if loader is None:
        return "the project's seeds are its raw data: the jobs load them", None
    result = load_raw_data(tenant, paths.warehouse)
    counts = getattr(result, "row_counts", None)
    if isinstance(counts, dict):
        return f"{len(counts)} source tables, {sum(counts.values()):,} rows by {loader} in {paths.warehouse}", result
    return f"raw data loaded by {loader} into {paths.warehouse}", result


def _worker(stack: SandboxStack) -> tuple[str, Any]:
    worker = stack.start_worker()
    worker.wait_ready()
    return f"process worker (pid {worker.pid}) polling pool {worker.pool!r} from {stack.paths.worker}", worker


def _worker_run(job_id: int, run: DeploymentRun, what: str) -> WorkerRun:
    from prefect.settings import get_current_settings

    done = WorkerRun(job_id, run, f"{get_current_settings().ui_url}/runs/flow-run/{run.flow_run_id}")
    if not run.completed:
        raise StepFailed(f"{what} of job {job_id} ended {run.state}: {run.message} ({done.ui_url})", done)
    return done


def run_candidates(tenant: TenantSettings, spec: Any, job_ids: Sequence[int]) -> tuple[str, list[WorkerRun]]:
    """One deployment run per job: its schedule's parameters on the parity target, executed by a worker."""
    from parity.runner import JobSpec
    from parity.settings import (
        load_parity_settings,
        parity_settings_path,
        production_targets,
        refuse_production_candidate,
    )
    from sandbox.runs import run_deployment_now

    settings_file = parity_settings_path(tenant.settings_file) if tenant.settings_file else None
    settings = load_parity_settings(settings_file)
    jobs = [JobSpec(job_id=job_id, parameters=spec.job_schedule(job_id).run_parameters) for job_id in job_ids]
    production = production_targets(tenant.dbt_cloud_environments, [(job.job_id, job.parameters) for job in jobs])
    refuse_production_candidate(settings, production, settings_file)
    runs = []
    for job in jobs:
        run = run_deployment_now(
            spec.full_name, job.candidate_parameters(settings.candidate_target), timeout=RUN_TIMEOUT
        )
        runs.append(_worker_run(job.job_id, run, "the parity run"))
    names = "; ".join(f"job {r.job_id}: {r.run.name} {r.run.state}" for r in runs)
    return f"{len(runs)} deployment runs on parity by the worker ({names})", runs


def _fire(spec: Any, job_id: int) -> tuple[str, WorkerRun]:
    """The activated schedule's next run, moved to now, picked up and finished by the worker."""
    from sandbox.runs import fire_schedule

    slug = spec.job_schedule(job_id).slug
    run = _worker_run(job_id, fire_schedule(spec.full_name, slug, timeout=RUN_TIMEOUT), f"schedule {slug}")
    return f"schedule {slug} fired: {run.run.name} {run.run.state} ({run.ui_url})", run


def _on_completion(plan: Any, job_id: int) -> list[Any]:
    """The plan's triggers (PlannedTrigger) that a completed run of job `job_id` fires."""
    return [t for t in plan.triggers if t.upstream_job_id == job_id and "Completed" in t.states]


def chained_upstreams(plan: Any, job_ids: Sequence[int]) -> list[int]:
    """The jobs among `job_ids` that the plan chains other jobs to, on a completed run."""
    return [job_id for job_id in job_ids if _on_completion(plan, job_id)]


def run_chains(
    plan: Any, spec: Any, job_ids: Sequence[int], earlier: Sequence[WorkerRun] = ()
) -> tuple[str, list[ChainedRun]]:
    """Per cut-over job that others are chained to: a deployment run of its schedule's parameters, then the runs
    that the triggers of its chained jobs started after it ended, each waited for until the worker finished it.

    The upstream run is started through the API, not fired from its schedule: Prefect's triggers may see a fired
    scheduler run's events up to 15 minutes late (see `sandbox.runs.fire_schedule`).

    Args:
        job_ids: the cut-over jobs (their chained jobs' triggers are enabled).
        earlier: runs that existed before (they never count as a chained run).
    """
    from sandbox.runs import DeploymentRunError, run_deployment_now, wait_for_job_run

    exclude = {run.run.flow_run_id for run in earlier}
    done: list[ChainedRun] = []
    lines = []
    for upstream_id in chained_upstreams(plan, job_ids):
        parameters = spec.job_schedule(upstream_id).parameters
        upstream = _worker_run(
            upstream_id, run_deployment_now(spec.full_name, parameters, timeout=RUN_TIMEOUT), "the upstream run"
        )
        exclude.add(upstream.run.flow_run_id)
        after = f"after run {upstream.run.name} of job {upstream_id} completed"
        for trigger in _on_completion(plan, upstream_id):
            try:
                run = wait_for_job_run(
                    spec.full_name,
                    trigger.job_id,
                    exclude=frozenset(exclude),
                    timeout=RUN_TIMEOUT,
                    start_timeout=CHAIN_START_TIMEOUT,
                )
            except DeploymentRunError as exc:
                raise StepFailed(
                    f"trigger {trigger.name} (enabled by cutover of job {upstream_id}) {after}: {exc}", done
                ) from exc
            chained = _worker_run(trigger.job_id, run, f"the run started by trigger {trigger.name}")
            ended = upstream.run.end_time
            if run.start_time is None or ended is None or run.start_time < ended:
                raise StepFailed(
                    f"run {run.name} of job {trigger.job_id} started at {run.start_time}, not {after}", done
                )
            done.append(ChainedRun(trigger.name, upstream, chained))
            lines.append(
                f"{upstream.run.name} {upstream.run.state}, then trigger {trigger.name} started {run.name}: "
                f"{run.state} ({chained.ui_url})"
            )
    return "; ".join(lines), done


def check_notifications(
    spec: Any, sink: NotificationSink, runs: Sequence[WorkerRun], timeout: float = NOTIFY_TIMEOUT
) -> tuple[str, list[dict[str, Any]]]:
    """What the enabled notification automations sent about `runs` (runs after cutover), read at the sandbox's
    sink: each automation of a run's job that watches the state the run ended in must have sent one.

    Returns every notification that names one of the runs (also those on events, e.g. a run that warned).
    """
    from migration.prefect_switch import PrefectTriggers

    switch = PrefectTriggers(spec.full_name)
    missing = []
    for done in runs:
        enabled = switch.notifications_of(done.job_id)
        for notification in spec.notifications:
            if not enabled.get(notification.name) or done.run.state not in notification.states:
                continue

            def sent(item: dict[str, Any], n: Any = notification, r: WorkerRun = done) -> bool:
                return item.get("destination") == n.destination and r.run.name in str(item.get("body", ""))

            if sink.wait_for(sent, timeout) is None:
                missing.append(f"{notification.name} ({done.run.name} {done.run.state} to {notification.destination})")
    about = [item for item in sink.received() if any(r.run.name in str(item.get("body", "")) for r in runs)]
    if missing:
        raise StepFailed(f"no notification within {timeout:.0f} s from {', '.join(missing)}", about)
    told = "; ".join(f"{item['destination']}: {item.get('subject', '')!r}" for item in about)
    return f"{len(about)} notification(s) sent: {told or 'none owed'}", about


def _log_reason(logs: str, lines: int = 2) -> str:
    """The last lines of a step's log that say what went wrong (not traceback frames), or that it logged nothing."""
    said = [line.strip() for line in logs.splitlines() if line.strip() and not line[:1].isspace()]
    said = [line for line in said if not line.startswith(("Traceback", "During handling"))]
    return " | ".join(said[-lines:]) or "the step logged nothing"


def run_baselines(cloud: SandboxDbtCloud, job_ids: Sequence[int]) -> tuple[str, list[BaselineRun]]:
    """One sandbox dbt Cloud run per job, in order; stops at the first that fails."""
    runs = []
    for job_id in job_ids:
        job = cloud.app.state.get_job(job_id)
        run = cloud.app.run_job(job_id, cause="dbt2prefect demo: parity baseline")
        steps = [(step["name"], int(step["status"])) for step in run.get("run_steps", [])]
        baseline = BaselineRun(job_id, job["name"], int(run["id"]), int(run["status"]), steps)
        runs.append(baseline)
        if not baseline.succeeded:
            failed = next((step for step in run.get("run_steps", []) if int(step["status"]) != SUCCESS), None)
            where = f"{failed['name']}: {_log_reason(str(failed.get('logs') or ''))}" if failed else "a step"
            raise StepFailed(f"dbt Cloud run {baseline.run_id} of {job['name']!r} failed at {where}", runs)
    names = "; ".join(f"{r.job_name} (run {r.run_id}, {len(r.steps)} steps)" for r in runs)
    return f"{len(runs)} dbt Cloud runs succeeded: {names}", runs


def export_account(paths: StackPaths, tenant: TenantSettings) -> tuple[str, Any]:
    """Export the tenant's dbt Cloud inventory over HTTP to the stack's inventory file."""
    from migration.export import write_inventory

    with Workspace(tenant) as workspace:
        inventory = workspace.inventory(include_deleted=True)
    path = write_inventory(inventory, paths.inventory)
    with_runs = sum(1 for job in inventory.jobs if job.latest_successful_run_id is not None)
    return f"{len(inventory.jobs)} jobs ({with_runs} with a successful run) to {path}", inventory


def plan_jobs(inventory: Any, tenant: TenantSettings) -> tuple[str, Any]:
    """The migration plan; fails on unacknowledged blockers or when nothing is scheduled."""
    with Workspace(tenant) as workspace:
        plan = workspace.plan(inventory=inventory)
    blocking = plan.blocking()
    if blocking:
        raise StepFailed(f"{len(blocking)} blocker finding(s) not acknowledged: {blocking[0].key}", plan)
    if not plan.schedules:
        raise StepFailed("the plan has no schedules", plan)
    acknowledged = ", ".join(plan.acknowledged) or "none"
    return (
        f"{len(plan.schedules)} schedules on {plan.flow_name}/{plan.deployment_name}, {len(plan.findings)} findings "
        f"(acknowledged for the rehearsal: {acknowledged})",
        plan,
    )


def apply_plan(plan: Any, tenant: TenantSettings) -> tuple[str, Any]:
    """Apply the plan's deployment (schedules inactive) to the active Prefect API; the value is (diff, spec)."""
    with Workspace(tenant) as workspace:
        spec = workspace.deployment(plan)
        diff = workspace.apply(spec)
    secrets = save_secret_blocks(plan)
    added = sum(1 for change in diff.schedules if change.status == "added")
    (step,) = (name.rsplit(".", 1)[-1] for name in spec.pull_steps[0])
    return (
        f"deployment {spec.full_name} {diff.deployment.status} on pool {spec.work_pool!r} (code: {step}); "
        f"{added} schedules added, inactive until cutover; {len(secrets)} Secret blocks saved",
        (diff, spec),
    )


def run_parity(tenant: TenantSettings, reports: Path, candidates: Sequence[WorkerRun]) -> tuple[str, ParityOutcome]:
    """The parity flow on the candidates vs their jobs' latest dbt Cloud runs; fails unless the verdict is PASS.

    The report goes where production keeps it, the tenant's report root in object storage (cutover reads its
    verdicts there); a copy with its own latest.json lands in `reports` for the browser and the notebook, which
    read it after the demo's servers have stopped.
    """
    from flows.parity_flow import parity_report
    from parity.store import load_latest_report, write_report

    result = parity_report(
        job_ids=[run.job_id for run in candidates],
        candidate_runs={str(run.job_id): run.run.flow_run_id for run in candidates},
    )
    with Workspace(tenant) as workspace:
        root = workspace.report_root
    report = load_latest_report(root)
    if report is None:
        raise StepFailed(f"the parity flow left no latest report beside {result['report_dir']}")
    folder = Path(write_report(report, reports))
    outcome = ParityOutcome(report=report, folder=folder, html=folder / "report.html", stored=result["report_dir"])
    jobs = ", ".join(f"{job_id} {verdict}" for job_id, verdict in result["jobs"].items())
    summary = f"{result['verdict']} ({jobs}); report {outcome.html}"
    if result["verdict"] != "PASS":
        raise StepFailed(summary, outcome)
    return summary, outcome


def _cutover(switch: Workspace, job_ids: Sequence[int]) -> tuple[str, Any]:
    report = switch.cutover(job_ids, by=DEMO_USER)
    done = ", ".join(f"{job.job_id} {job.action}" for job in report.jobs)
    warnings = f"; {len(report.warnings)} warning(s) about chained jobs" if report.warnings else ""
    return f"{done}{warnings}", report


def _rollback(switch: Workspace, job_ids: Sequence[int]) -> tuple[str, Any]:
    report = switch.rollback(job_ids, by=DEMO_USER)
    return ", ".join(f"{job.job_id} {job.action}" for job in report.jobs), report


def _status(switch: Workspace, job_ids: Sequence[int], *, expect_cut_over: bool) -> tuple[str, Any]:
    """Every job's dbt Cloud schedule, Prefect schedule, ledger state and the triggers of the jobs chained to it
    (enabled while it is cut over), as expected."""
    from migration.prefect_switch import PrefectTriggers

    report = switch.status(automations=False)
    rows = {row.job_id: row for row in report.jobs}
    expected = (False, "active", "cut over") if expect_cut_over else (True, "paused", "rolled back")
    triggers = PrefectTriggers(switch.prefect.deployment, switch.prefect_gateway)
    lines = []
    for job_id in job_ids:
        row = rows.get(job_id)
        if row is None:
            raise StepFailed(f"status has no row for job {job_id}", report)
        seen = (row.dbt_cloud_schedule_on, row.prefect_schedule, row.ledger_state.value)
        cloud = {True: "on", False: "off", None: "-"}[row.dbt_cloud_schedule_on]
        chained = triggers.after_job(job_id)
        lines.append(
            f"{job_id}: dbt Cloud {cloud}, Prefect {row.prefect_schedule}, ledger {row.ledger_state.value}"
            + "".join(f", trigger {name} {'on' if on else 'off'}" for name, on in chained.items())
        )
        if seen != expected or any(on is not expect_cut_over for on in chained.values()):
            raise StepFailed(f"unexpected state, {lines[-1]}", report)
    return "; ".join(lines), report


# ------------------------------------------------------------------------------------------------ the parallel run


def _ui_run(job_id: int, run: DeploymentRun) -> WorkerRun:
    from prefect.settings import get_current_settings

    return WorkerRun(job_id, run, f"{get_current_settings().ui_url}/runs/flow-run/{run.flow_run_id}")


def shadow_feed(stack: SandboxStack, spec: Any, job_id: int, stop: contextlib.ExitStack) -> tuple[str, ShadowFeed]:
    """dbt Cloud's `job.run.completed` webhook for the job, posted to a stand-in for a Prefect Cloud webhook that
    turns it into the `dbt2prefect.dbt_cloud.run.completed` event; the Secret blocks the worker's flows read."""
    import httpx

    from dbt2prefect.names import shadow_deployment_name
    from dbt2prefect.run_env import save_secret
    from migration.deployment import SHADOW_FLOW
    from migration.shadow_feed import WEBHOOK_EVENT_TYPE, webhook_template
    from sandbox.prefect_webhook import PrefectWebhookStandIn

    tenant, cloud = stack.tenant, stack.dbt_cloud
    hook = stop.enter_context(PrefectWebhookStandIn.start(webhook_template()))
    answer = httpx.post(
        f"{cloud.url}/api/v3/accounts/{cloud.account_id}/webhooks/subscriptions",
        headers={"Authorization": f"Token {cloud.token}"},
        json={"name": "prefect", "client_url": hook.url, "event_types": [WEBHOOK_EVENT_TYPE], "job_ids": [job_id]},
        timeout=30,
    )
    answer.raise_for_status()
    subscription = answer.json()["data"]
    secret_block = tenant.blocks.dbt_cloud_webhook_secret_block or WEBHOOK_SECRET_BLOCK
    token_block = tenant.blocks.dbt_cloud_token_block or TOKEN_BLOCK
    save_secret(secret_block, subscription["hmac_secret"])
    save_secret(token_block, cloud.token)
    shadow = f"{SHADOW_FLOW}/{shadow_deployment_name(spec.name)}"
    feed = ShadowFeed(job_id, str(subscription["id"]), hook.url, shadow)
    return (
        f"dbt Cloud webhook {feed.subscription_id} ({WEBHOOK_EVENT_TYPE}, job {job_id}) signs each completed run to "
        f"{hook.url}, which makes it a Prefect event; the secret and the dbt Cloud token are in Secret blocks "
        f"{secret_block!r} and {token_block!r}; the event's trigger starts deployment {shadow}",
        feed,
    )


def shadow_runs(
    switch: Workspace, cloud: SandboxDbtCloud, feed: ShadowFeed, runs: int
) -> tuple[str, list[ShadowedRun]]:
    """`runs` dbt Cloud runs of the job, one after the other; each run's webhook event starts the shadow flow on the
    worker, which runs the twin and records the pair. After each pair but the last, cutover must still refuse."""
    from migration.errors import CutoverRefusedError
    from sandbox.runs import wait_for_run

    done: list[ShadowedRun] = []
    for number in range(1, runs + 1):
        run = cloud.app.run_job(feed.job_id, cause="dbt2prefect demo: the parallel-run period")
        run_id = int(run["id"])
        if int(run["status"]) != SUCCESS:
            raise StepFailed(f"dbt Cloud run {run_id} of job {feed.job_id} failed", done)
        delivered = cloud.app.webhooks.wait_delivered(run_id, timeout=60)
        if not delivered or not all(d.delivered for d in delivered):
            raise StepFailed(f"dbt Cloud's webhook for run {run_id} was not delivered: {delivered}", done)

        def of_run(parameters: dict[str, Any], wanted: int = run_id) -> bool:
            return parameters.get("dbt_cloud_run_id") == wanted

        shadow = wait_for_run(
            feed.shadow_deployment,
            of_run,
            f"shadow run of dbt Cloud run {run_id}",
            timeout=RUN_TIMEOUT,
            start_timeout=CHAIN_START_TIMEOUT,
        )
        worker_run = _ui_run(feed.job_id, shadow)
        if not shadow.completed:
            raise StepFailed(f"shadow run {shadow.name} {shadow.state}: {shadow.message} ({worker_run.ui_url})", done)
        pair = switch.shadow_store.get(feed.job_id, run_id)
        if pair is None:
            raise StepFailed(f"shadow run {shadow.name} recorded no pair for dbt Cloud run {run_id}", done)
        refused = None
        if number < runs:
            try:
                switch.cutover([feed.job_id], by=DEMO_USER, dry_run=True)
            except CutoverRefusedError as exc:
                refused = str(exc).splitlines()[-1].strip()
            else:
                raise StepFailed(f"cutover allowed job {feed.job_id} after {number} pair(s) of {runs}", done)
        done.append(ShadowedRun(run_id, worker_run, pair, refused))
        if pair.verdict.value != "PASS":
            reasons = "; ".join(reason.text() for reason in pair.reasons) or "see its report"
            raise StepFailed(f"dbt Cloud run {run_id} and its twin: {pair.verdict.value} ({reasons})", done)
    verdicts = ", ".join(f"dbt Cloud run {r.dbt_cloud_run_id} {r.pair.verdict.value}" for r in done)
    refusals = [r.refused for r in done if r.refused]
    refused = f"; before the last pair cutover still refused: {refusals[0]}" if refusals else ""
    return f"{len(done)} shadow runs by the worker, one per dbt Cloud run ({verdicts}){refused}", done


def shadow_readiness(switch: Workspace, job_id: int) -> tuple[str, Any]:
    """The job's readiness from its pairs; fails unless it is ready."""
    ready = switch.readiness([job_id])[job_id]
    text = (
        f"job {job_id} {ready.job_name}: streak {ready.summary()}, {ready.passes} PASS of {ready.pairs} pair(s), "
        f"{'ready' if ready.ready else 'not ready'}; extra warehouse time (the twins' runs) "
        f"{ready.warehouse_seconds:.0f} s; the table is the Prefect artifact "
        f"shadow-readiness-{switch.tenant.name}"
    )
    if not ready.ready:
        raise StepFailed(f"{text}: {ready.missing()}", ready)
    return text, ready


def shadow_cutover(switch: Workspace, job_id: int) -> tuple[str, Any]:
    """Cut the job over again, now on the evidence of its streak (the ledger records it)."""
    from migration.ledger import Ledger, RecordKind

    report = switch.cutover([job_id], by=DEMO_USER)
    started = Ledger.last_of(switch.ledger.records(job_id), RecordKind.CUTOVER_STARTED)
    evidence = (started.parity if started is not None else None) or "no evidence recorded"
    row = next(r for r in switch.status().jobs if r.job_id == job_id)
    if row.guard != "on":
        raise StepFailed(f"job {job_id} is cut over, but its guard trigger is {row.guard or 'missing'}", report)
    done = ", ".join(f"{job.job_id} {job.action}" for job in report.jobs)
    return f"{done}; ledger: {evidence}; guard trigger on, watching its next runs", report


def _break(stack: SandboxStack) -> tuple[Path | None, str]:
    """Push a broken change to the code the worker clones; returns the file to remove again (None: the change is
    a run parameter instead) and the change in words."""
    remote, project = stack.remote, stack.tenant.project_dir
    if remote is None or not project.resolve().is_relative_to(remote.checkout.resolve()):
        return None, "a run with timeout_seconds = 0 (the tenant's dbt project is not in the sandbox's code remote)"
    broken = project / BROKEN_MODEL
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_text(
        "-- A change that refers to a model that does not exist.\nselect * from {{ ref('no_such_model') }}\n"
    )
    remote.publish("A broken change: a model that refers to a model that does not exist")
    return broken, f"{BROKEN_MODEL} (refers to a model that does not exist) pushed to the code remote"


def broken_run(stack: SandboxStack, spec: Any, job_id: int) -> tuple[str, tuple[WorkerRun, str]]:
    """A broken change, then a run of the job's schedule parameters that the worker runs and that fails."""
    from sandbox.runs import run_deployment_now

    broken, change = _break(stack)
    parameters = dict(spec.job_schedule(job_id).parameters)
    if broken is None:
        parameters["timeout_seconds"] = 0
    try:
        run = _ui_run(job_id, run_deployment_now(spec.full_name, parameters, timeout=RUN_TIMEOUT))
    finally:
        if broken is not None and stack.remote is not None:
            broken.unlink()
            stack.remote.publish("Revert the broken change")
    if run.run.completed:
        raise StepFailed(f"run {run.run.name} of job {job_id} {run.run.state} despite {change}", (run, change))
    return f"{change}; run {run.run.name} {run.run.state} ({run.ui_url}); the change is reverted", (run, change)


def guard_rollback(
    switch: Workspace, spec: Any, sink: NotificationSink | None, failed: WorkerRun, change: str
) -> tuple[str, GuardOutcome]:
    """The guard's run that the failed run's guard trigger started: the job rolled back (ledger, both schedules) and
    its destinations told."""
    from dbt2prefect.names import guard_name
    from migration.deployment import GUARD_FLOW
    from migration.ledger import RecordKind
    from sandbox.runs import wait_for_run

    job_id = failed.job_id
    resource = f"prefect.flow-run.{failed.run.flow_run_id}"
    guard = wait_for_run(
        f"{GUARD_FLOW}/{guard_name(spec.name)}",
        lambda parameters: parameters.get("flow_run_id") == resource,
        f"guard run of {failed.run.name}",
        timeout=RUN_TIMEOUT,
        start_timeout=CHAIN_START_TIMEOUT,
    )
    if not guard.completed:
        raise StepFailed(f"guard run {guard.name} {guard.state}: {guard.message}")
    records = switch.ledger.records(job_id)
    kinds = [r.kind for r in records[-3:]]
    if kinds != [RecordKind.GUARD_TRIPPED, RecordKind.ROLLBACK_STARTED, RecordKind.ROLLBACK_VERIFIED]:
        raise StepFailed(f"the ledger of job {job_id} ends {[k.value for k in kinds]}, not guard_tripped, rollback")
    row = next(r for r in switch.status().jobs if r.job_id == job_id)
    if (row.dbt_cloud_schedule_on, row.prefect_schedule, row.guard) != (True, "paused", "off"):
        raise StepFailed(
            f"after the guard: dbt Cloud schedule on={row.dbt_cloud_schedule_on}, Prefect {row.prefect_schedule}, "
            f"guard trigger {row.guard}"
        )
    told = None
    if sink is not None:
        told = sink.wait_for(
            lambda n: failed.run.flow_run_id in str(n.get("body", "")) and "after cutover" in str(n.get("subject")),
            NOTIFY_TIMEOUT,
        )
        if told is None:
            raise StepFailed(f"the guard sent no notification about {failed.run.name} within {NOTIFY_TIMEOUT:.0f} s")
    outcome = GuardOutcome(failed, guard, records, row, told or {}, change)
    where = f"; {told['destination']} told {told.get('subject', '')!r}" if told else ""
    return (
        f"guard run {guard.name} {guard.state}: ledger guard_tripped ({records[-3].reason}), then rollback by "
        f"{records[-1].by}; dbt Cloud schedule on, Prefect schedule paused, guard trigger off{where}",
        outcome,
    )


# ------------------------------------------------------------------------------------------------ story


@contextlib.contextmanager
def _activated(stack: SandboxStack) -> Iterator[None]:
    with stack.activated():
        yield


def run_demo(
    workdir: Path | None = None,
    *,
    keep: bool = False,
    observer: DemoObserver | None = None,
    tenant_file: Path | None = None,
    job_ids: Sequence[int] | None = None,
    fired_job: int | None = None,
    shadow_job: int | None = None,
    ready_timeout: float = 180.0,
) -> DemoResult:
    """Rehearse the migration on the sandbox in a fresh work folder.

    Args:
        workdir: the work folder (default `.dbt2prefect/demo/`); emptied first when the sandbox made it.
        keep: leave the servers running; the caller stops them with `DemoResult.close()`.
        observer: told when each step starts and ends.
        tenant_file: the tenant to rehearse (default: the repository's tenant); its `[tenant.sandbox]` settings
            name its jobs, its raw data and the demo's jobs.
        job_ids: the dbt Cloud jobs run as baselines and compared (default: the tenant's `demo_jobs`, else
            every active job).
        fired_job: the cut-over job whose schedule fires once (default: the tenant's `demo_fired_job`; skipped
            when not in `job_ids`).
        shadow_job: the job of the parallel-run period (default: the fired job; skipped when not in `job_ids`).

    Returns:
        Every step's result; `failed` names the step that stopped the story, if any.

    Raises:
        WorkdirError: the work folder is not one the sandbox may empty.
        ConfigError: the tenant settings file is invalid.
    """
    from dbt2prefect.tenant import load_tenant

    source = load_tenant(tenant_file)
    watch = observer or _Silent()
    root = workdir or DEFAULT_WORKDIR
    paths = prepare_workdir(root, fresh=True)
    result = DemoResult(workdir=paths.root)
    runner = _Runner(watch, result)
    started = time.monotonic()
    stop = contextlib.ExitStack()
    fired = fired_job if fired_job is not None else source.sandbox.demo_fired_job
    shadowed = shadow_job if shadow_job is not None else fired
    try:
        runner.step("data", "Load raw data", lambda: _raw_data(paths, source))
        stack, jobs = _start_stack(runner, stop, paths, source, job_ids, ready_timeout, shadowed)
        tenant = stack.tenant
        stop.enter_context(_activated(stack))
        result.stack = stack
        worker = runner.step("worker", "Start a process worker in a folder of its own", lambda: _worker(stack))
        stop.enter_context(worker)
        result.stack = stack = dataclasses.replace(stack, worker=worker)
        inventory = runner.step("export", "Export the dbt Cloud inventory", lambda: export_account(stack.paths, tenant))
        plan = runner.step("plan", "Plan: one deployment, one schedule per job", lambda: plan_jobs(inventory, tenant))
        _, spec = runner.step("apply", "Apply the plan to the Prefect API", lambda: apply_plan(plan, tenant))
        candidates = runner.step(
            "candidates",
            "Run each job's schedule parameters on the parity target: deployment runs by the worker",
            lambda: run_candidates(tenant, spec, jobs),
        )
        runner.step(
            "parity",
            "Parity: dbt Cloud baselines vs the worker's runs",
            lambda: run_parity(tenant, stack.paths.reports, candidates),
        )
        switch = stop.enter_context(Workspace(tenant))
        runner.step(
            "cutover", "Cut over: dbt Cloud schedules off, Prefect schedules on", lambda: _cutover(switch, jobs)
        )
        earlier = list(candidates)
        if fired is not None and fired in jobs:
            earlier.append(
                runner.step(
                    "scheduled_run",
                    "An activated schedule fires: the worker runs it",
                    lambda: _fire(spec, fired),
                )
            )
        after_cutover = earlier[len(candidates) :]
        if chained_upstreams(plan, jobs):
            chains = runner.step(
                "chained_run",
                "The upstream job's run completes: its chained job's trigger starts the chained job, the worker runs it",
                lambda: run_chains(plan, spec, jobs, earlier),
            )
            after_cutover += [run for chain in chains for run in (chain.upstream, chain.run)]
        sink = stack.notifications
        if spec.notifications and sink is not None:
            runner.step(
                "notifications",
                "The cut-over jobs' notifications reach their destinations (the sandbox's stand-in for Slack and email)",
                lambda: check_notifications(spec, sink, after_cutover),
            )
        runner.step("status", "Status after cutover", lambda: _status(switch, jobs, expect_cut_over=True))
        runner.step("rollback", "Roll back from the ledger", lambda: _rollback(switch, jobs))
        runner.step(
            "status_after_rollback",
            "Status after rollback",
            lambda: _status(switch, jobs, expect_cut_over=False),
        )
        if shadowed is not None and shadowed in jobs:
            _parallel_run(runner, stop, stack, switch, spec, shadowed)
    except _Stop:
        pass
    except BaseException:
        keep = False  # interrupted (Ctrl-C, SIGTERM): stop what was started, whatever `keep` asked
        raise
    finally:
        result.seconds = time.monotonic() - started
        if keep and result.stack is not None:
            result._closer = stop
        else:
            stop.close()
            result.stack = None
    return result


def _parallel_run(
    runner: _Runner, stop: contextlib.ExitStack, stack: SandboxStack, switch: Workspace, spec: Any, job_id: int
) -> None:
    """The parallel-run period of one job, its cutover earned, and the guarded window that undoes a bad one."""
    tenant = stack.tenant
    passes = tenant.shadow.required_passes
    feed = runner.step(
        "shadow_feed",
        "The parallel-run period: dbt Cloud's signed webhooks reach Prefect as events",
        lambda: shadow_feed(stack, spec, job_id, stop),
    )
    runner.step(
        "shadow_runs",
        f"dbt Cloud runs job {job_id} {passes} times: each run's event starts its shadow twin on the worker, and the "
        "pair is compared",
        lambda: shadow_runs(switch, stack.dbt_cloud, feed, passes),
    )
    runner.step("readiness", "Readiness: the job's streak of PASS pairs", lambda: shadow_readiness(switch, job_id))
    runner.step("shadow_cutover", "Cut over the job, earned by its streak", lambda: shadow_cutover(switch, job_id))
    failed, change = runner.step(
        "broken_run",
        "A broken change after cutover: the job's next run fails",
        lambda: broken_run(stack, spec, job_id),
    )
    runner.step(
        "guard_rollback",
        "The guarded window: the guard rolls the job back to dbt Cloud and tells its destinations",
        lambda: guard_rollback(switch, spec, stack.notifications, failed, change),
    )


def _demo_settings(source: TenantSettings, shadow_job: int | None) -> dict[str, Any]:
    """The demo tenant's `[tenant.shadow]` (shadowing only `shadow_job`; off without one) and the Secret blocks its
    flows on the worker read."""
    if shadow_job is None:
        return {}
    blocks = {
        **source.blocks.model_dump(mode="json", exclude_none=True),
        "dbt_cloud_token_block": source.blocks.dbt_cloud_token_block or TOKEN_BLOCK,
        "dbt_cloud_webhook_secret_block": source.blocks.dbt_cloud_webhook_secret_block or WEBHOOK_SECRET_BLOCK,
    }
    shadow = {**source.shadow.model_dump(mode="json", exclude_none=True), **DEMO_SHADOW, "jobs": [shadow_job]}
    return {"shadow": shadow, "blocks": blocks}


def _start_stack(
    runner: _Runner,
    stop: contextlib.ExitStack,
    paths: StackPaths,
    source: TenantSettings,
    job_ids: Sequence[int] | None,
    ready_timeout: float,
    shadow_job: int | None = None,
) -> tuple[SandboxStack, Sequence[int]]:
    """Servers, then the dbt Cloud baselines while the Prefect server boots, then blocks: three steps.

    Returns the stack and the baseline jobs (`job_ids`, else the tenant's demo jobs, else every active job).
    """

    def servers() -> tuple[str, tuple[Any, PrefectServer, S3Api, CodeRemote, Path]]:
        prefect = stop.enter_context(PrefectServer.start(paths.prefect_home))
        s3 = stop.enter_context(start_object_storage(paths, ready_timeout))
        cloud = stop.enter_context(start_dbt_cloud(paths, source))
        remote = make_code_remote(paths)
        acknowledged = source.sandbox.demo_acknowledged
        tenant_file = write_tenant_file(
            paths,
            cloud,
            source=source.settings_file,
            acknowledged=acknowledged,
            bucket=f"s3://{BUCKET}",
            remote=remote,
            settings=_demo_settings(source, shadow_job),
        )
        return (
            f"dbt Cloud API {cloud.url}; S3 API {s3.endpoint_url} (artifacts and ledger in s3://{BUCKET}); code "
            f"remote {remote.url}; Prefect server starting on {prefect.url} (pid {prefect.pid})",
            (cloud, prefect, s3, remote, tenant_file),
        )

    cloud, prefect, s3, remote, tenant_file = runner.step(
        "servers", "Start the sandbox dbt Cloud API, an S3 API, a git remote and a Prefect server", servers
    )
    sink = stop.enter_context(NotificationSink.start(paths.notifications))
    stack = SandboxStack(paths, cloud, prefect, tenant_file, (), True, notifications=sink, s3=s3, remote=remote)
    if job_ids is None:
        active = [int(job["id"]) for job in cloud.app.state.jobs.values() if job.get("state", 1) == 1]
        unknown = [job for job in source.sandbox.demo_jobs if job not in cloud.app.state.jobs]
        if unknown:
            served = source.sandbox.jobs_file or "the bundled jobs file"
            raise ConfigError(
                f"tenant settings {source.settings_file}: [tenant.sandbox] demo_jobs names job {unknown[0]}, which "
                f"is not in {served}; list ids of jobs in that file (or remove demo_jobs to run every active job)"
            )
        job_ids = list(source.sandbox.demo_jobs) or active
    chosen = job_ids
    runner.step("baselines", "Run the dbt Cloud baseline jobs", lambda: run_baselines(cloud, chosen))

    def ready() -> tuple[str, list[str]]:
        prefect.wait_ready(ready_timeout)
        with prefect_api(prefect.api_url):
            blocks = register_profile_blocks(stack.tenant, paths.warehouse)
            blocks += register_notification_blocks(stack.tenant, sink)
        return f"Prefect API {prefect.api_url} healthy; blocks {', '.join(blocks)}", blocks

    blocks = runner.step("prefect", "Wait for the Prefect API and register profile and notification blocks", ready)
    return dataclasses.replace(stack, blocks=tuple(blocks)), chosen
