"""dbt Cloud jobs + tenant settings → MigrationPlan (no clock, no service, deterministic order; the only file read
is the tenant project's schema macro, for CI jobs' per-pull-request isolation).

Every job ends up either as a schedule (slug `job-<id>`) or in the findings, usually both when something about it
has no Prefect equivalent. Reason codes are stable strings that tenant settings use to acknowledge blockers.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dbt2prefect.dbt_cli import ParsedStep, parse_step_line, validate_step
from dbt2prefect.dbt_cloud import RunStatus
from dbt2prefect.errors import DbtCommandError, ParameterError
from dbt2prefect.escaping import shell_line
from dbt2prefect.names import job_parameters, schedule_slug, trigger_name, workflow_job_id
from dbt2prefect.params import RunParameters, validate
from dbt2prefect.reasons import ReasonCode
from dbt2prefect.run_env import env_name_problem
from dbt2prefect.run_events import WARNED_RUN_STATE
from dbt2prefect.tenant import TenantSettings
from migration.dbt_cloud.models import Environment, Job, JobSchedule, Notification
from migration.env_vars import AccountVariables, JobVariables, job_variables, secret_setup_command
from migration.errors import InventoryError
from migration.notifications import plan_notifications
from migration.plan import (
    Finding,
    JobStatus,
    MigrationPlan,
    PlannedCiJob,
    PlannedCiStep,
    PlannedJob,
    PlannedSchedule,
    PlannedTrigger,
    ScheduleProof,
    Severity,
)
from migration.schedules import PROOF_COUNT, PROOF_START, translate_cron
from migration.steps import STATE_OPTIONS, step_parameters

if TYPE_CHECKING:
    from migration.export import Inventory

_DAY_NAMES = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
_STATUS_NAMES = {RunStatus.SUCCESS: "Completed", RunStatus.ERROR: "Failed", RunStatus.CANCELLED: "Cancelled"}
_PREFECT_STATES: dict[int, tuple[str, ...]] = {
    RunStatus.SUCCESS: ("Completed", WARNED_RUN_STATE),
    RunStatus.ERROR: ("Failed", "Crashed"),
    RunStatus.CANCELLED: ("Cancelled",),
}
"""The final Prefect states of a run that dbt Cloud would report with each final run status (a run in which nodes
warned succeeded, as in dbt Cloud)."""


def describe_schedule(schedule: JobSchedule) -> str:
    """dbt Cloud's schedule in words, from its UI fields (date/time), always in UTC."""
    date, time = schedule.date, schedule.time
    if date.type in ("custom_cron", "interval_cron"):
        return f"cron {date.cron or schedule.cron} (UTC)"
    days = "every day"
    if date.type == "days_of_week" and date.days is not None:
        days = "on " + ", ".join(_DAY_NAMES[d % 7] for d in sorted(set(date.days)))
    if time.type == "at_exact_hours" and time.hours:
        fields = (schedule.cron or "").split()
        minute = fields[0] if fields else "0"
        minute_text = f"{int(minute):02d}" if minute.isdigit() else "00"
        hours = ", ".join(f"{h:02d}:{minute_text}" for h in sorted(set(time.hours)))
        return f"{days} at {hours} UTC"
    interval = time.interval or 1
    every = "every hour" if interval == 1 else f"every {interval} hours"
    return f"{days}, {every} (UTC)"


def _validated(params: dict[str, Any]) -> RunParameters | ParameterError:
    """The parameters as the flow reads them, or the flow's message when it would refuse them."""
    try:
        return validate(params)
    except ParameterError as exc:
        return exc


class _Findings:
    def __init__(self, job: Job) -> None:
        self.job = job
        self.items: list[Finding] = []

    def add(self, code: ReasonCode, severity: Severity, message: str, manual_step: str) -> None:
        self.items.append(
            Finding(
                reason_code=code,
                severity=severity,
                job_id=self.job.id,
                job_name=self.job.name,
                message=message,
                manual_step=manual_step,
            )
        )


def _parse_steps(job: Job, found: _Findings) -> list[ParsedStep] | None:
    if not job.execute_steps:
        found.add(
            ReasonCode.STEPS_EMPTY,
            Severity.BLOCKER,
            "the job has no execute steps; dbt Cloud runs only `dbt deps` and the checkbox steps",
            "add the job's dbt command in dbt Cloud and export again, or leave it out by acknowledging "
            f"'steps_empty:{job.id}'",
        )
        return None
    parsed: list[ParsedStep] = []
    ok = True
    for line in job.execute_steps:
        try:
            step = parse_step_line(line)
            validate_step(step)
        except DbtCommandError as exc:
            ok = False
            found.add(
                exc.reason_code,
                Severity.BLOCKER,
                str(exc),
                "fix the step in dbt Cloud (dbt-core 1.11 rejects it as written) and export again",
            )
            continue
        parsed.append(step)
        state_flags = sorted(step.flags[name] for name in STATE_OPTIONS if name in step.options)
        if state_flags:
            found.add(
                ReasonCode.STEP_STATE_FLAG,
                Severity.BLOCKER,
                f"step {line!r} uses {', '.join(state_flags)}: a path in dbt Cloud's run environment",
                "remove the state flags from the step and set the schedule's `state_path` parameter to the "
                "artifact store folder holding the production manifest",
            )
    return parsed if ok else None


def _job_parameters(
    job: Job, found: _Findings, connection: str | None, variables: JobVariables | None
) -> RunParameters | None:
    steps = _parse_steps(job, found)
    if steps is None:
        return None
    # target.name stays as the job had it (often "default"); the environment's block connects.
    params: dict[str, Any] = {"target": job.settings.target_name, "threads": job.settings.threads}
    single = step_parameters(steps[0]) if len(steps) == 1 else None
    if single is not None:
        candidate = {**params, **single}  # a --target/--threads in the step wins, as in dbt Cloud
        if isinstance(_validated(candidate), RunParameters):
            params = candidate
        else:
            single = None
    if single is None:
        params["steps"] = list(job.execute_steps)
    if job.run_generate_sources:
        params["source_freshness"] = True
    if job.generate_docs:
        params["generate_docs"] = True
    if job.execution.timeout_seconds > 0:
        params["timeout_seconds"] = job.execution.timeout_seconds
    if connection is not None and connection != params["target"]:
        params["connection"] = connection
    params.update(job_parameters(job.id, job.name))
    if variables is not None and variables.env_vars:
        params["env_vars"] = variables.env_vars
    if variables is not None and variables.secret_blocks:
        params["secret_env_vars"] = variables.secret_blocks
    validated = _validated(params)
    if isinstance(validated, ParameterError):
        found.add(
            ReasonCode.PARAMETERS_INVALID,
            Severity.BLOCKER,
            f"the translated parameters are not valid for the flow: {validated}",
            "fix the job's steps or settings in dbt Cloud and export again",
        )
        return None
    return validated


def _feature_findings(
    job: Job, found: _Findings, environment: Environment | None, variables: JobVariables | None
) -> None:
    triggers = job.triggers
    if not is_git_job(job) and (
        job.deferring_job_definition_id is not None or job.deferring_environment_id is not None
    ):
        # A CI or merge job's deferral becomes the workflow's `--defer --state` (see `_ci_job`).
        source = (
            f"job {job.deferring_job_definition_id}"
            if job.deferring_job_definition_id is not None
            else f"environment {job.deferring_environment_id}"
        )
        found.add(
            ReasonCode.DEFERRAL,
            Severity.WARNING,
            f"the job defers to {source}; without state it builds its whole selection",
            "set the schedule's `state_path` parameter to the artifact store folder that holds that "
            "environment's latest manifest.json",
        )
    if job.run_compare_changes:
        found.add(
            ReasonCode.COMPARE_CHANGES,
            Severity.WARNING,
            f"dbt Cloud's compare changes ({job.compare_changes_flags}) has no Prefect equivalent",
            "compare in CI with the parity report (`dbt2prefect parity`) or a recce/audit_helper check",
        )
    if job.run_lint:
        found.add(
            ReasonCode.LINT,
            Severity.WARNING,
            "the job lints SQL before running (dbt Cloud's SQLFluff step)",
            "run sqlfluff in CI, or add `sqlfluff lint` to the repository's pre-commit hooks",
        )
    if job.lifecycle_webhooks:
        found.add(
            ReasonCode.LIFECYCLE_WEBHOOKS,
            Severity.WARNING,
            "the job sends lifecycle webhooks (run started/completed/errored)",
            "create Prefect automations on flow-run state changes of the deployment with a webhook "
            "notification block pointing at the same receiver",
        )
    if job.custom_environment_variables and variables is None:
        # Without the exported v3 variables the overrides are known by name only.
        names_of_vars = sorted(
            str(item.get("name") or item.get("key") or "?") for item in job.custom_environment_variables
        )
        found.add(
            ReasonCode.JOB_ENV_VARS,
            Severity.BLOCKER,
            f"the job overrides environment variables: {', '.join(names_of_vars)} (values not shown)",
            "export the inventory again with this version of dbt2prefect (it reads the v3 environment "
            "variables, which the schedules then pass to dbt)",
        )
    if variables is not None:
        _variable_findings(variables, found)
    _git_trigger_off_finding(job, found)
    if triggers.custom_branch_only or (environment is not None and environment.use_custom_branch):
        branch = environment.custom_branch if environment is not None else None
        found.add(
            ReasonCode.CUSTOM_BRANCH,
            Severity.WARNING,
            f"the job runs a custom git branch{f' ({branch})' if branch else ''}, not the default branch",
            "point the deployment's code at that branch (prefect.yaml pull step / image build) or merge it",
        )
    if job.dbt_version and not _same_dbt_minor(job.dbt_version):
        found.add(
            ReasonCode.DBT_VERSION_PINNED,
            Severity.WARNING,
            f"the job pins dbt {job.dbt_version}, the flow runs dbt-core {_runtime_dbt_version()}: models may "
            "build differently",
            "run parity for this job (`dbt2prefect parity --job ID`) and cut over only on a PASS verdict; "
            "or pin the same dbt-core minor version in constraints.txt",
        )


def runs_on_pull_requests(job: Job) -> bool:
    """True for a job that dbt Cloud runs on pull requests: one of its pull-request triggers is on.

    `triggers_on_draft_pr` alone is not a trigger (it only widens one to drafts), nor is `job_type: ci`.
    """
    return job.triggers.github_webhook or job.triggers.git_provider_webhook


def is_git_job(job: Job) -> bool:
    """True for a job that dbt Cloud runs on git events: on pull requests (CI) or when one merges (merge)."""
    return runs_on_pull_requests(job) or job.triggers.on_merge


def _git_trigger_off_finding(job: Job, found: _Findings) -> None:
    """A job that looks like a CI or merge job but that dbt Cloud never runs on a git event."""
    if is_git_job(job) or not (job.job_type in ("ci", "merge") or job.triggers_on_draft_pr):
        return
    what = f"job_type {job.job_type!r}" if job.job_type in ("ci", "merge") else "triggers_on_draft_pr"
    found.add(
        ReasonCode.GIT_TRIGGER_OFF,
        Severity.INFO,
        f"the job has {what} but its pull-request and merge triggers are off: dbt Cloud runs it on no pull request "
        "and no merge, so it is not in the CI workflow",
        "nothing to do; turn on the job's pull-request (or merge) trigger in dbt Cloud and export again if it "
        "should run on pull requests",
    )


def _allowed_variables(variables: JobVariables, found: _Findings) -> JobVariables:
    """The job's variables without those whose names no run may set (one blocker finding names them all)."""
    problems = {
        name: problem
        for name in [*variables.env_vars, *variables.secret_blocks]
        if (problem := env_name_problem(name)) is not None
    }
    if not problems:
        return variables
    found.add(
        ReasonCode.ENV_VAR_NAME,
        Severity.BLOCKER,
        f"{len(problems)} of the job's environment variables are left out of its parameters: "
        + "; ".join(problems.values()),
        "rename them in dbt Cloud and export again; or, to run the job without them, acknowledge "
        f"'env_var_name:{found.job.id}' in the tenant settings",
    )
    return JobVariables(
        env_vars={k: v for k, v in variables.env_vars.items() if k not in problems},
        secret_blocks={k: v for k, v in variables.secret_blocks.items() if k not in problems},
        secret_scopes={k: v for k, v in variables.secret_scopes.items() if k not in problems},
    )


def _variable_findings(variables: JobVariables, found: _Findings) -> None:
    if variables.env_vars:
        found.add(
            ReasonCode.ENV_VARS,
            Severity.INFO,
            f"the job's runs get {', '.join(variables.env_vars)} as dbt Cloud resolves them (project default < "
            "environment < job override); migrated as the schedule's `env_vars` parameter",
            "nothing to do; a change in dbt Cloud reaches Prefect with the next export, plan and apply",
        )
    for name, block in variables.secret_blocks.items():
        scope = variables.secret_scopes[name]
        which = {"project": "the project default", "job": "the job's override"}.get(scope, f"the {scope} value")
        found.add(
            ReasonCode.ENV_VAR_SECRET,
            Severity.WARNING,
            f"secret {name} ({which}) is masked by dbt Cloud; the flow reads it from Prefect Secret block "
            f"{block!r} at run time, and runs fail until that block exists",
            f"copy {which} of {name} from dbt Cloud, then in a shell: `{secret_setup_command(name, block)}`",
        )


def _one_per_secret_block(findings: list[Finding]) -> list[Finding]:
    """A secret that several jobs read from one Secret block is one finding, on the first job, naming the others:
    a person saves the block once."""
    sharing: dict[str, list[Finding]] = {}
    for finding in findings:
        if finding.reason_code == ReasonCode.ENV_VAR_SECRET:
            sharing.setdefault(finding.manual_step, []).append(finding)
    kept: list[Finding] = []
    for finding in findings:
        group = sharing.get(finding.manual_step) if finding.reason_code == ReasonCode.ENV_VAR_SECRET else None
        if group is None:
            kept.append(finding)
        elif group[0] is finding:
            others = ", ".join(f"{f.job_id} ({f.job_name})" for f in group[1:])
            message = f"{finding.message}; jobs {others} read the same block" if others else finding.message
            kept.append(finding.model_copy(update={"message": message}))
    return kept


def _runtime_dbt_version() -> str:
    from importlib.metadata import version

    return version("dbt-core")


def _same_dbt_minor(pinned: str) -> bool:
    """True when a job's dbt_version names the runtime's dbt-core minor version ('1.11', '1.11.0-latest').

    dbt Cloud's release tracks ('latest', 'versionless', 'compatible', 'latest-fusion') name no version.
    """
    runtime = _runtime_dbt_version().split(".")[:2]
    return pinned.split("-")[0].split(".")[:2] == runtime


def _run_command(plan_ref: str, params: RunParameters) -> str:
    # The parameters hold the job's name: quoted by the one shell escape, so a pasted line runs only this command.
    return shell_line(
        ["prefect", "deployment", "run", plan_ref, "--params", json.dumps(params.to_api(), sort_keys=True)]
    )


def translate_job(
    job: Job,
    tenant: TenantSettings,
    environment: Environment | None = None,
    account_variables: AccountVariables | None = None,
) -> tuple[PlannedJob, PlannedSchedule | None, list[Finding]]:
    """Translate one job: its plan entry, its schedule (if it has one) and its findings.

    Args:
        account_variables: the exported environment variables; None when the inventory has none.
    """
    found = _Findings(job)
    plan_ref = f"{tenant.flow_name}/{tenant.deployment_name}"
    if job.is_deleted:
        found.add(
            ReasonCode.JOB_DELETED,
            Severity.INFO,
            "the job is deleted in dbt Cloud; not migrated",
            "nothing to do; restore it in dbt Cloud and export again if it is still needed",
        )
        return PlannedJob(job_id=job.id, job_name=job.name, status="not_migrated"), None, found.items
    connection = tenant.environment_target(job.environment_id, environment.name if environment else None)
    variables = (
        None
        if account_variables is None
        else job_variables(
            account_variables.for_job(job, environment.name if environment else None),
            tenant.blocks.profile_prefix,
            job.id,
        )
    )
    if variables is not None:
        variables = _allowed_variables(variables, found)
    params = _job_parameters(job, found, connection, variables)
    _feature_findings(job, found, environment, variables)
    schedule: PlannedSchedule | None = None
    if job.deactivated:
        # dbt Cloud does not run it: a schedule here would be one that cutover switches on.
        found.add(
            ReasonCode.JOB_DEACTIVATED,
            Severity.WARNING,
            f"dbt Cloud has deactivated the job ({job.deactivation_reason or 'no reason given'}); it does not run "
            "there, so it gets no schedule",
            "reactivate it in dbt Cloud and export again if it should run on a schedule; until then run it on "
            f"demand{': ' + _run_command(plan_ref, params) if params is not None else ''}",
        )
    elif job.triggers.schedule and params is not None:
        schedule = _plan_schedule(job, params, found, tenant)
    status: JobStatus
    if schedule is not None:
        status = "scheduled"
    elif job.deactivated:
        status = "on_demand" if params is not None else "blocked"
    elif params is None or job.triggers.schedule:
        status = "blocked"
    elif is_git_job(job):
        status = "not_migrated"  # until `_ci_job` plans it in the workflow
    else:
        status = "on_demand"
        if job.job_completion_trigger_condition is None:
            found.add(
                ReasonCode.NO_TRIGGER,
                Severity.INFO,
                "the job has no schedule and no trigger: it runs only when started by hand or by the API",
                f"run it on demand: {_run_command(plan_ref, params)}",
            )
    if params is not None and status != "not_migrated" and _connection(params) not in tenant.targets:
        env_name = f" ({environment.name})" if environment is not None and environment.name else ""
        found.add(
            ReasonCode.ENVIRONMENT_UNMAPPED,
            Severity.BLOCKER,
            f"the job's environment {job.environment_id}{env_name} is not mapped to a profile block, and its "
            f"target name {params.target!r} is not one of the tenant's targets ({', '.join(tenant.targets)})",
            f"map the environment under [tenant.dbt_cloud_environments] in {tenant.name}.toml, e.g. "
            f'"{job.environment_id}" = "prod" (the target whose block holds that environment\'s connection); '
            "the job keeps its target name",
        )
    planned = PlannedJob(
        job_id=job.id,
        job_name=job.name,
        status=status,
        parameters=params,
        schedule_slug=schedule.slug if schedule else None,
    )
    return planned, schedule, found.items


def _connection(params: RunParameters) -> str:
    """The tenant target whose block a run with these parameters connects with."""
    return str(params.connection or params.target)


def _plan_schedule(job: Job, params: RunParameters, found: _Findings, tenant: TenantSettings) -> PlannedSchedule | None:
    cron = job.schedule.cron
    if not cron:
        found.add(
            ReasonCode.SCHEDULE_INVALID,
            Severity.BLOCKER,
            "the job's schedule trigger is on but its schedule has no cron expression",
            "set the job's schedule in dbt Cloud and export again",
        )
        return None
    result = translate_cron(cron)
    if result.spec is None:
        found.add(
            ReasonCode.SCHEDULE_INVALID,
            Severity.BLOCKER,
            f"schedule cron {cron!r} cannot be scheduled in Prefect: {result.error}",
            "change the job's schedule in dbt Cloud to a five-field cron Prefect accepts and export again",
        )
        return None
    spec = result.spec
    if not result.equivalent:
        found.add(
            ReasonCode.SCHEDULE_NOT_EQUIVALENT,
            Severity.WARNING,
            f"no Prefect schedule fires exactly like {cron!r}; the closest differs at {result.first_difference}",
            "check the planned schedule's fire times and adjust the cron in prefect.yaml or dbt Cloud",
        )
    elif spec.kind == "rrule":
        found.add(
            ReasonCode.SCHEDULE_RRULE,
            Severity.INFO,
            f"Prefect's cron reads {cron!r} differently; it is planned as an RRule with the same fire times",
            "nothing to do; the RRule is shown in the plan and in prefect.yaml",
        )
    return PlannedSchedule(
        profile_block=tenant.block_name(_connection(params)),
        slug=schedule_slug(job.id, job.name),
        job_id=job.id,
        job_name=job.name,
        cron=spec.expression if spec.kind == "cron" else None,
        rrule=spec.expression if spec.kind == "rrule" else None,
        day_or=spec.day_or,
        timezone=spec.timezone,
        active=job.triggers.schedule and not job.is_deleted,
        parameters=params,
        description=describe_schedule(job.schedule),
        source_cron=cron,
        proof=ScheduleProof(
            start=PROOF_START.isoformat(),
            checked=result.checked if result.equivalent else PROOF_COUNT,
            equivalent=result.equivalent,
            first_difference=result.first_difference,
        ),
    )


def _chain(job: Job, planned: PlannedJob, upstream: PlannedJob | None) -> tuple[PlannedTrigger | None, Finding]:
    """A chained job's trigger (when both jobs can run under Prefect) and the finding that says what became of it."""
    condition = job.job_completion_trigger_condition
    assert condition is not None
    upstream_id = condition.condition.job_id
    statuses = condition.condition.statuses or list(_PREFECT_STATES)
    names = [_STATUS_NAMES.get(RunStatus(s), str(s)) if s in _STATUS_NAMES else str(s) for s in statuses]
    upstream_name = upstream.job_name if upstream is not None else "not in this inventory"
    when = f"the job runs when job {upstream_id} ({upstream_name}) ends in {', '.join(names)}"
    unknown = [s for s in statuses if s not in _PREFECT_STATES]

    def finding(severity: Severity, message: str, manual_step: str) -> Finding:
        return Finding(
            reason_code=ReasonCode.JOB_CHAINING,
            severity=severity,
            job_id=job.id,
            job_name=job.name,
            message=message,
            manual_step=manual_step,
        )

    if upstream is None or upstream.run_parameters is None or planned.run_parameters is None or unknown:
        why = (
            f"the upstream job {upstream_id} is not in this inventory"
            if upstream is None
            else f"statuses {unknown} are not final dbt Cloud run statuses"
            if unknown
            else "the upstream job has no translated parameters"
            if upstream.run_parameters is None
            else "the job has no translated parameters"
        )
        return None, finding(
            Severity.BLOCKER,
            f"{when}; no trigger is planned: {why}",
            "fix the blocker named here and export again; the chain then becomes a trigger of the deployment",
        )
    states = sorted({state for s in statuses for state in _PREFECT_STATES[s]})
    trigger = PlannedTrigger(
        name=trigger_name(job.id, upstream_id),
        job_id=job.id,
        job_name=job.name,
        upstream_job_id=upstream_id,
        upstream_job_name=upstream.job_name,
        states=states,
        parameters=planned.run_parameters,
    )
    return trigger, finding(
        Severity.INFO,
        f"{when}; migrated as the deployment trigger {trigger.name} (runs of job {upstream_id} entering "
        f"{', '.join(states)} run this job's parameters)",
        "nothing to do; cutover and rollback switch the trigger with the job (cut over its upstream job too)",
    )


def _chain_cycles(jobs: Sequence[Job]) -> dict[int, list[int]]:
    """Job id -> the cycle of chained jobs it is on (in chain order, from its smallest id), for every job whose
    completion trigger leads back to itself: a job chained to itself, or jobs chained to each other.

    Deleted jobs never run, so they break a chain. Each job has at most one upstream job, so following the
    upstream ids from any job either ends or enters exactly one cycle.
    """
    upstream = {
        job.id: job.job_completion_trigger_condition.condition.job_id
        for job in jobs
        if job.job_completion_trigger_condition is not None and not job.is_deleted
    }
    cycles: dict[int, list[int]] = {}
    done: set[int] = set()
    for start in upstream:
        path: list[int] = []
        node: int | None = start
        while node is not None and node in upstream and node not in done and node not in path:
            path.append(node)
            node = upstream[node]
        if node is not None and node in path:
            # The chain runs downstream against the upstream pointers: reverse them for the order runs take.
            cycle = list(reversed(path[path.index(node) :]))
            first = cycle.index(min(cycle))
            cycle = cycle[first:] + cycle[:first]
            cycles.update(dict.fromkeys(cycle, cycle))
        done.update(path)
    return cycles


def _cycle_findings(cycles: Mapping[int, list[int]], planned: Mapping[int, PlannedJob]) -> list[Finding]:
    """One blocker per job on a cycle of chained jobs, naming every job of the cycle."""
    findings: list[Finding] = []
    for job_id, cycle in sorted(cycles.items()):
        names = [f"job {member} ({planned[member].job_name})" for member in [*cycle, cycle[0]]]
        chained = "is chained to itself" if len(cycle) == 1 else "is on a cycle of chained jobs"
        findings.append(
            Finding(
                reason_code=ReasonCode.JOB_CHAIN_CYCLE,
                severity=Severity.BLOCKER,
                job_id=job_id,
                job_name=planned[job_id].job_name,
                message=f"the job {chained}: {' -> '.join(names)}; as deployment triggers each run would start "
                "the next, forever, so no trigger is planned for " + ("it" if len(cycle) == 1 else "these jobs"),
                manual_step="remove the completion trigger of one job of the cycle in dbt Cloud and export again; "
                f"or acknowledge 'job_chain_cycle:{job_id}' to migrate the job without its trigger",
            )
        )
    return findings


def _state_target(
    job: Job, jobs: Mapping[int, Job], tenant: TenantSettings, environments: Mapping[int, Environment]
) -> str | None:
    """The tenant target whose latest successful run is the job's state: that of the environment it defers to."""
    environment_id = job.deferring_environment_id
    deferred_job = jobs.get(job.deferring_job_definition_id) if job.deferring_job_definition_id is not None else None
    if environment_id is None and deferred_job is not None:
        environment_id = deferred_job.environment_id
    if environment_id is None:
        return None
    environment = environments.get(environment_id)
    return tenant.environment_target(environment_id, environment.name if environment else None)


def _ci_jobs(
    job: Job,
    planned: PlannedJob,
    jobs: Mapping[int, Job],
    tenant: TenantSettings,
    environments: Mapping[int, Environment],
) -> tuple[list[PlannedCiJob], list[Finding]]:
    """A CI or merge job as jobs of the CI workflow (one per git event it runs on, when its steps translate), and
    the findings that say what became of it."""
    from migration.ci_workflow import (
        branch_problem,
        deferred_line,
        github_secret_name,
        main_branch,
        schema_isolation,
        workflow_file_name,
    )

    found = _Findings(job)
    environment = environments.get(job.environment_id)
    branch = (
        environment.custom_branch
        if environment is not None and environment.use_custom_branch and environment.custom_branch
        else main_branch(tenant)
    )
    state_target = _state_target(job, jobs, tenant, environments)
    defers = job.deferring_environment_id is not None or job.deferring_job_definition_id is not None
    params = planned.run_parameters
    events = [e for e, on in (("pull_request", runs_on_pull_requests(job)), ("push", job.triggers.on_merge)) if on]
    both = len(events) > 1
    ci_jobs: list[PlannedCiJob] = []
    for event in events:
        merge = event == "push"
        code = ReasonCode.MERGE_TRIGGER if merge else ReasonCode.CI_TRIGGER
        drafts = ", drafts too" if job.triggers_on_draft_pr else ", not drafts"
        when = (
            f"the job runs when a pull request merges into {branch}"
            if merge
            else f"the job runs on pull requests to {branch} (CI{drafts})"
        )
        problem = (
            "dbt Cloud has deactivated the job, so it runs on no pull request or merge"
            if job.deactivated
            else "its steps did not translate (see its other findings)"
            if params is None
            else "it defers to an environment not mapped under [tenant.dbt_cloud_environments], so there is no "
            "state to defer to"
            if state_target is None and defers
            else branch_problem(branch)
        )
        if params is None or problem is not None:
            found.add(
                code,
                Severity.WARNING,
                f"{when}; it is not in the CI workflow: {problem}",
                "fix what is named here and emit again; until then run the job's commands in the git provider by "
                "hand, with `--defer --state <production manifest>`",
            )
            continue
        defer = state_target is not None
        steps = [
            *([PlannedCiStep(line="dbt source freshness", checkbox=True)] if job.run_generate_sources else []),
            *(PlannedCiStep(line=deferred_line(parse_step_line(line), defer)) for line in job.execute_steps),
            *([PlannedCiStep(line=deferred_line(parse_step_line("dbt docs generate"), defer), checkbox=True)]
              if job.generate_docs else []),
        ]  # fmt: skip
        env_vars = dict(params.env_vars or {})
        isolation = schema_isolation(tenant.project_dir, str(params.target), env_vars) if not merge else None
        ci_job = PlannedCiJob(
            job_id=job.id,
            job_name=job.name,
            event="push" if merge else "pull_request",
            branch=branch,
            draft_pr=job.triggers_on_draft_pr and not merge,
            target=str(params.target),
            connection=_connection(params),
            state_target=state_target,
            steps=steps,
            threads=params.threads if params.threads is not None else job.settings.threads,
            timeout_seconds=params.timeout_seconds or 0,
            env_vars=env_vars,
            secret_env_vars={name: github_secret_name(block) for name, block in (params.secret_env_vars or {}).items()},
            account_id=job.account_id,
            project_id=job.project_id,
            environment_id=job.environment_id,
            schema_isolated=isolation is None or isolation.isolated,
        )
        ci_jobs.append(ci_job)
        name = workflow_job_id(job.id, ci_job.event, both=both)
        on = f"pull requests to {branch}" if not merge else f"pushes to {branch}"
        found.add(
            code,
            Severity.INFO,
            f"{when}; migrated as job {name} of the GitHub Actions workflow {workflow_file_name(tenant.name)} that "
            f"`emit` writes (on {on}; the job's own commands"
            + (
                f" with `--defer --state` on the latest successful run on {state_target})"
                if defer
                else ", without deferral, as the job defers to no environment)"
            ),
            "copy the workflow to .github/workflows/ and add the repository secrets its header names",
        )
        if isolation is not None and not isolation.isolated:
            found.add(
                ReasonCode.CI_ISOLATION,
                Severity.WARNING,
                f"{isolation.consequence()}; the workflow runs the job's pull requests one at a time",
                f"make generate_schema_name build into target.schema when target.name is {params.target!r} "
                "(e.g. target.schema ~ '_' ~ custom_schema_name), or map the CI environment to a target whose "
                "profile block's database only CI uses; then emit again",
            )
    return ci_jobs, found.items


def plan_inventory(inventory: Inventory, tenant: TenantSettings, jobs: Sequence[Job] | None = None) -> MigrationPlan:
    """The plan of an exported inventory: its jobs (or `jobs`, e.g. as the ledger recorded them), environments,
    notifications and environment variables."""
    return build_plan(
        inventory.job_models() if jobs is None else jobs,
        tenant,
        inventory.environment_models(),
        notifications=inventory.notification_models(),
        variables=inventory.environment_variable_models(),
    )


def build_plan(
    jobs: Sequence[Job],
    tenant: TenantSettings,
    environments: Mapping[int, Environment] | None = None,
    *,
    notifications: Sequence[Notification] = (),
    variables: AccountVariables | None = None,
) -> MigrationPlan:
    """Translate all of a tenant's jobs into one plan (jobs ordered by id).

    Args:
        jobs: the jobs of the inventory, deleted ones included (they become info findings).
        tenant: tenant settings (deployment and flow names, targets, work pool, acknowledged findings).
        environments: dbt Cloud environments by id, when the inventory has them (custom branches).
        notifications: the account's job notification settings, when the inventory has them.
        variables: the exported environment variables, when the inventory has them.
    """
    twice = sorted(job_id for job_id, count in Counter(job.id for job in jobs).items() if count > 1)
    if twice:
        # Two schedules would get one slug: refused here whatever read the jobs.
        raise InventoryError(
            f"job id(s) {', '.join(map(str, twice))} appear more than once among the jobs to plan; each dbt Cloud "
            "job is planned once: export again (`dbt2prefect export`)"
        )
    ordered = sorted(jobs, key=lambda j: j.id)
    planned: dict[int, PlannedJob] = {}
    schedules: list[PlannedSchedule] = []
    findings: list[Finding] = []
    for job in ordered:
        environment = (environments or {}).get(job.environment_id)
        entry, schedule, job_findings = translate_job(job, tenant, environment, variables)
        planned[job.id] = entry
        if schedule is not None:
            schedules.append(schedule)
        findings.extend(job_findings)
    triggers: list[PlannedTrigger] = []
    cycles = _chain_cycles(ordered)
    findings.extend(_cycle_findings(cycles, planned))
    for job in ordered:
        entry = planned[job.id]
        if job.job_completion_trigger_condition is None or entry.status == "not_migrated" or job.id in cycles:
            continue
        trigger, finding = _chain(job, entry, planned.get(job.job_completion_trigger_condition.condition.job_id))
        findings.append(finding)
        if trigger is not None:
            triggers.append(trigger)
            if entry.status == "on_demand":
                planned[job.id] = entry.model_copy(update={"status": "chained", "trigger_name": trigger.name})
    ci_jobs: list[PlannedCiJob] = []
    by_id = {job.id: job for job in ordered}
    for job in ordered:
        if job.is_deleted or not is_git_job(job):
            continue
        job_ci, job_findings = _ci_jobs(job, planned[job.id], by_id, tenant, environments or {})
        findings.extend(job_findings)
        ci_jobs.extend(job_ci)
        if job_ci and planned[job.id].status == "not_migrated":  # a CI job with a schedule too keeps "scheduled"
            planned[job.id] = planned[job.id].model_copy(update={"status": "ci_workflow"})
    upstream = {t.job_id: t.upstream_job_id for t in triggers}
    automations, notification_findings = plan_notifications(notifications, by_id, planned, tenant, upstream)
    findings.extend(notification_findings)
    findings = _one_per_secret_block(findings)
    return MigrationPlan(
        tenant=tenant.name,
        deployment_name=tenant.deployment_name,
        flow_name=tenant.flow_name,
        entrypoint=tenant.entrypoint,
        work_pool=tenant.work_pool,
        deployment_parameters=RunParameters(target=tenant.default_target),
        jobs=list(planned.values()),
        schedules=schedules,
        triggers=triggers,
        ci_jobs=ci_jobs,
        notifications=automations,
        findings=findings,
        acknowledged=sorted(tenant.acknowledged_findings),
    )
