"""The tenant's deployment as one typed description: `apply` sends it to the Prefect API, `emit` writes it as
prefect.yaml. Both render what `build_deployment` returns, so the two can never disagree.

The description carries what a worker needs to run a schedule: the entrypoint, the code storage (pull steps:
`git_clone` of the tenant's repository in production, `set_working_directory` for a local folder), the job
variables that give the flow-run process its pinned packages and the tenant settings file, each schedule's
active flag as the cutover ledger says (a redeploy never changes who runs a job), and the triggers that run
chained jobs after their upstream job's runs (on once the upstream job is cut over).

While shadowing is on (`[tenant.shadow] enabled`) it also describes the shadow deployment: `<deployment>-shadow`,
the shadow flow (`flows/shadow_flow.py:shadow_run`) on the same pool, code and runtime, with no schedule and one
trigger on every `dbt2prefect.dbt_cloud.run.completed` event (webhook or poll) that passes the event's job, run,
status and payload as parameters. A deployment of its own: a deployment has one entrypoint, and the shadow flow's
runs must not be runs of the jobs' deployment, which chained jobs' triggers and notifications follow.

With a guarded window (`[tenant.shadow] guarded_runs` > 0) it also describes the guard: a second deployment,
`<deployment>-guard`, of the guard flow (same pool, code and runtime, no schedule), and per scheduled job a trigger
`job-<id>-guard` that runs it with the id of each run of the job that ends Failed or Crashed (on while the job is
cut over, like its notifications). A deployment of its own, not a run of this one: the guard must run with its
own parameters and flow, and a failure of `run_dbt_wg`'s parameters or code must not stop the flow that undoes it.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import Requirement
from pydantic import BaseModel, ConfigDict, Field

from dbt2prefect.escaping import markdown_cell, markdown_text
from dbt2prefect.names import (
    UNNAMED_RUN,
    guard_name,
    guard_trigger_name,
    job_tag,
    run_name_prefix,
    runs_of_job,
    schedule_job_id,
    shadow_deployment_name,
    shadow_trigger_name,
)
from dbt2prefect.object_store import is_local_url
from dbt2prefect.params import ApiParameters, RunParameters
from dbt2prefect.profile_fields import ADAPTER_PACKAGES
from dbt2prefect.run_events import RUN_WARNED_EVENT
from dbt2prefect.tenant import REPO_ROOT, TenantSettings
from migration.errors import MigrationError
from migration.ledger import Ledger, LedgerState
from migration.notifications import BEFORE_START_STATES, before_start_groups, jinja_text
from migration.plan import MigrationPlan, PlannedSchedule, PlannedTrigger
from migration.shadow_feed import RUN_COMPLETED_EVENT, RUN_RESOURCE_PREFIX

TENANT_FILE_ENV = "DBT2PREFECT_TENANT_FILE"
"""The variable the flows read their tenant settings file from (relative to the code's folder, or absolute)."""
IMAGE_TEMPLATE = "prefecthq/prefect-client:{prefect}-python{python}"
"""The image of the exact pinned Prefect version: a floating `3-python3.12` would change under the runtime."""
RUNTIME_PACKAGES = ("prefect", "prefect-dbt", "dbt-core", "fsspec", "pyyaml")
"""What the flow needs at run time beyond the code itself, whatever the tenant; `runtime_packages` adds the
adapters, the store's fsspec backend and the tenant's own packages. All pinned from constraints.txt."""
STORE_BACKENDS = {
    "s3": "s3fs",
    "s3a": "s3fs",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "az": "adlfs",
    "abfs": "adlfs",
    "abfss": "adlfs",
}
"""The fsspec backend package of each URL scheme of an artifact store or ledger (`file` and paths need none)."""
CLONE_STEP_ID = "clone"
SHADOW_FLOW = "shadow_run"
SHADOW_ENTRYPOINT = "flows/shadow_flow.py:shadow_run"
GUARD_FLOW = "guard"
GUARD_ENTRYPOINT = "flows/guard_flow.py:guard"
GUARD_STATES = ("Failed", "Crashed")
"""The final states of a job's run that start the guard flow."""


class DeploymentError(MigrationError):
    """The deployment cannot be described as asked (no code storage, a pin missing, a cutover half done)."""


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", serialize_by_alias=True)


class ScheduleSpec(_Spec):
    """One schedule of the deployment, as Prefect stores it."""

    slug: str
    cron: str | None = None
    rrule: str | None = None
    day_or: bool = True
    timezone: str = "UTC"
    active: bool
    run_parameters: ApiParameters = Field(alias="parameters")

    @property
    def parameters(self) -> dict[str, Any]:
        """`run_parameters` as Prefect stores them (the API payloads, prefect.yaml)."""
        return self.run_parameters.to_api()


def job_runs_trigger(name_match: str, deployment_name: str, expect: list[str]) -> dict[str, Any]:
    """An event trigger on the runs of the deployment whose name matches `name_match` (one job's runs, see
    `dbt2prefect.names.runs_of_job`), firing on each event in `expect`: what chained jobs' triggers and
    notification automations both follow."""
    return {
        "type": "event",
        "posture": "Reactive",
        "match": {"prefect.resource.id": "prefect.flow-run.*", "prefect.resource.name": name_match},
        "match_related": {"prefect.resource.role": "deployment", "prefect.resource.name": deployment_name},
        "expect": expect,
        "threshold": 1,
        "within": 0,
    }


class TriggerSpec(_Spec):
    """A deployment trigger (one Prefect automation): run the deployment with a chained job's parameters when a
    run of its upstream job (named `job-<id> ...`, see `dbt2prefect.names`), on this deployment, enters one
    of the listed states."""

    name: str
    description: str
    enabled: bool
    upstream_run_name: str
    states: list[str]
    run_parameters: ApiParameters = Field(alias="parameters")

    @property
    def parameters(self) -> dict[str, Any]:
        """`run_parameters` as Prefect stores them (the API payloads, prefect.yaml)."""
        return self.run_parameters.to_api()

    def event_trigger(self, deployment_name: str) -> dict[str, Any]:
        """The trigger as prefect.yaml writes it (a `DeploymentEventTrigger`): both renderings build from this."""
        return {
            "name": self.name,
            "description": self.description,
            "enabled": self.enabled,
            **job_runs_trigger(
                f"{self.upstream_run_name}*", deployment_name, [f"prefect.flow-run.{s}" for s in self.states]
            ),
            "parameters": self.run_parameters.to_api(),
        }


_EVENT_WORDS = (
    "{{ event.event | replace('prefect.flow-run.', '') | replace('"
    + RUN_WARNED_EVENT
    + "', 'Completed with warnings') }}"
)


_WARNED_NODES = (
    "{% if event.payload.unique_ids %}Warned nodes ({{ event.payload.warned_nodes }}): "
    "{{ event.payload.unique_ids | join(', ') }}"
    "{% if event.payload.warned_nodes > event.payload.unique_ids | length %} and "
    "{{ event.payload.warned_nodes - event.payload.unique_ids | length }} more{% endif %}\n{% endif %}"
)
"""The warned nodes that a run's `dbt2prefect.run.warned` event names (its payload), as a line of a notification's
body; nothing for any other event."""


class NotificationSpec(_Spec):
    """A notification automation: send through a notification block when a run of a job (named `job-<id> ...`)
    on this deployment enters one of `states` or emits one of `events`. Not part of the deployment in Prefect's
    API (an automation of its own), so `apply` creates it and prefect.yaml cannot carry it.

    A before-start automation (`notify-<setting id>-before-start`) follows the runs no flow has named (they died
    before the flow started) for the jobs of one setting that tell their failures: `job_id` is 0 and
    `switch_job_ids` the jobs whose cutover turns it on (its tags name them).
    """

    name: str
    description: str
    enabled: bool
    job_id: int
    destination: str
    run_name: str
    """The flow-run name pattern the trigger matches (`job-<id> *`, or `UNNAMED_RUN`)."""
    states: list[str]
    events: list[str]
    block: str
    subject: str
    body: str
    switch_job_ids: list[int] = []

    def automation(self, deployment_name: str, block_document_id: str) -> dict[str, Any]:
        """The automation as Prefect's API takes it (`AutomationCore`, also the shape `prefect automation create`
        reads), sending through the block document `block_document_id`."""
        return {
            "name": self.name,
            "description": self.description,
            "enabled": self.enabled,
            "tags": [job_tag(job_id) for job_id in self.switch_job_ids],
            "trigger": job_runs_trigger(
                self.run_name, deployment_name, [*(f"prefect.flow-run.{state}" for state in self.states), *self.events]
            ),
            "actions": [
                {
                    "type": "send-notification",
                    "block_document_id": block_document_id,
                    "subject": self.subject,
                    "body": self.body,
                }
            ],
        }


class ShadowTriggerSpec(_Spec):
    """The shadow deployment's trigger: run the shadow flow once per `RUN_COMPLETED_EVENT`, with the run the event
    reports (its payload: job id, run id, status, and the whole payload for a webhook's signature check)."""

    name: str
    description: str
    enabled: bool = True

    def event_trigger(self) -> dict[str, Any]:
        """The trigger as prefect.yaml writes it (a `DeploymentEventTrigger`): both renderings build from this."""
        return {
            "name": self.name,
            "description": self.description,
            "enabled": self.enabled,
            "type": "event",
            "posture": "Reactive",
            "match": {"prefect.resource.id": f"{RUN_RESOURCE_PREFIX}*"},
            "expect": [RUN_COMPLETED_EVENT],
            "threshold": 1,
            "within": 0,
            "parameters": {
                "job_id": "{{ event.payload.job_id }}",
                "dbt_cloud_run_id": "{{ event.payload.run_id }}",
                "status": "{{ event.payload.status }}",
                "event": "{{ event.payload }}",
            },
        }


class GuardTriggerSpec(_Spec):
    """The automation that runs the guard deployment with the id of each run of one job (named `job-<id> ...`) on
    this deployment that ends Failed or Crashed; switched with the job's cutover."""

    name: str
    description: str
    enabled: bool
    job_id: int

    def event_trigger(self, deployment_name: str) -> dict[str, Any]:
        """The trigger as a `DeploymentEventTrigger` of the guard deployment takes it."""
        return {
            "name": self.name,
            "description": self.description,
            "enabled": self.enabled,
            **job_runs_trigger(
                runs_of_job(self.job_id), deployment_name, [f"prefect.flow-run.{s}" for s in GUARD_STATES]
            ),
            "parameters": {"flow_run_id": "{{ event.resource.id }}"},
        }


class DeploymentSpec(_Spec):
    """Everything Prefect stores about the deployment that this toolkit decides."""

    tenant: str
    flow_name: str
    name: str
    description: str
    entrypoint: str
    work_pool: str
    pool_type: str
    parameters: dict[str, Any]
    enforce_parameter_schema: bool = True
    pull_steps: list[dict[str, Any]]
    job_variables: dict[str, Any]
    schedules: list[ScheduleSpec]
    triggers: list[TriggerSpec] = []
    notifications: list[NotificationSpec] = []
    shadow_trigger: ShadowTriggerSpec | None = None
    """The shadow deployment's trigger (None: shadowing is off); it runs `shadow_deployment(spec)`."""
    guard_triggers: list[GuardTriggerSpec] = []
    """The guarded window's triggers (empty: no guard); they run `guard_deployment(spec)`."""
    stores: dict[str, str] = {}
    """Setting name -> URL of what runs, operators and CI share: artifact store, ledger, parity reports."""

    @property
    def full_name(self) -> str:
        """`<flow>/<deployment>`, as the Prefect API names it."""
        return f"{self.flow_name}/{self.name}"

    def schedule(self, slug: str) -> ScheduleSpec:
        """The schedule of the job whose schedule slug is `slug` (a slug of the job under any name, or `job-<id>`)."""
        job_id = schedule_job_id(slug)
        return next(
            s for s in self.schedules if s.slug == slug or (job_id is not None and schedule_job_id(s.slug) == job_id)
        )

    def job_schedule(self, job_id: int) -> ScheduleSpec:
        """The schedule of job `job_id`."""
        return next(s for s in self.schedules if schedule_job_id(s.slug) == job_id)

    def trigger(self, name: str) -> TriggerSpec:
        return next(t for t in self.triggers if t.name == name)


def shadow_trigger(deployment_name: str, *, enabled: bool = True) -> ShadowTriggerSpec:
    """The shadow deployment's trigger (`enabled` False: shadowing was turned off, the trigger stays, off)."""
    return ShadowTriggerSpec(
        name=shadow_trigger_name(deployment_name),
        description="Each completed dbt Cloud run (webhook or poll) starts its shadow run",
        enabled=enabled,
    )


def _service_deployment(
    spec: DeploymentSpec, flow_name: str, name: str, entrypoint: str, description: str
) -> DeploymentSpec:
    """A deployment of one of the toolkit's own flows beside the jobs' deployment: the same pool, code and runtime,
    no parameters, schedules, triggers or notifications of the jobs (its own triggers start it)."""
    return spec.model_copy(
        update={
            "flow_name": flow_name,
            "name": name,
            "description": description,
            "entrypoint": entrypoint,
            "parameters": {},
            "schedules": [],
            "triggers": [],
            "notifications": [],
            "shadow_trigger": None,
            "guard_triggers": [],
        }
    )


def shadow_deployment(spec: DeploymentSpec) -> DeploymentSpec:
    """The shadow deployment, `<deployment>-shadow`: the shadow flow, started by its trigger."""
    return _service_deployment(
        spec,
        SHADOW_FLOW,
        shadow_deployment_name(spec.name),
        SHADOW_ENTRYPOINT,
        f"The parallel-run period of deployment {spec.full_name}: each completed dbt Cloud run of a job in shadow "
        "gets a Prefect twin on the parity target and a comparison of that pair.",
    )


def guard_deployment(spec: DeploymentSpec) -> DeploymentSpec:
    """The guard's deployment, `<deployment>-guard`: the guard flow, started by the jobs' guard triggers."""
    return _service_deployment(
        spec,
        GUARD_FLOW,
        guard_name(spec.name),
        GUARD_ENTRYPOINT,
        f"The guarded window after cutover of deployment {spec.full_name}: started by the job-<id>-guard triggers "
        "with the id of a failed run.",
    )


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def _pins(constraints: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in constraints.splitlines():
        line = raw.split("#", 1)[0].strip()
        if "==" in line:
            name, _, version = line.partition("==")
            pins[_normalised(name)] = version.split(";")[0].strip()
    return pins


def pinned_versions(constraints: str, packages: Iterable[str] = RUNTIME_PACKAGES) -> dict[str, str]:
    """`name==version` pins for `packages` from the text of a constraints file (names compared normalised).

    A package given as `name==version` keeps its own version.

    Raises:
        DeploymentError: a package has no `==` pin.
    """
    pins = _pins(constraints)
    wanted: dict[str, str | None] = {}
    for package in packages:
        name, _, version = package.partition("==")
        wanted[_normalised(name)] = version or None
    missing = [name for name, version in wanted.items() if version is None and name not in pins]
    if missing:
        raise DeploymentError(
            f"constraints.txt has no '==' pin for {', '.join(missing)}; add them (or give 'name==version' in "
            "[tenant.runtime] packages) and retry"
        )
    return {name: version or pins[name] for name, version in wanted.items()}


def tenant_adapters(tenant: TenantSettings) -> tuple[str, ...]:
    """The dbt adapter types the tenant's runs need: `[tenant.runtime] adapters`, else its local profiles.yml's.

    Raises:
        DeploymentError: neither names one (the message says which setting to add).
    """
    if tenant.runtime.adapters:
        return tenant.runtime.adapters
    found: list[str] = []
    profiles = None if tenant.local_profiles_dir is None else tenant.local_profiles_dir / "profiles.yml"
    if profiles is not None and profiles.is_file():
        try:
            data = yaml.safe_load(profiles.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise DeploymentError(f"cannot read the adapter types from {profiles}: {exc}") from None
        body = data.get(tenant.profile_name) if isinstance(data, dict) else None
        outputs = body.get("outputs") if isinstance(body, dict) else None
        for output in (outputs or {}).values():
            kind = output.get("type") if isinstance(output, dict) else None
            if isinstance(kind, str) and kind not in found:
                found.append(kind)
    if not found:
        raise DeploymentError(
            f"tenant {tenant.name}: no adapter type is known for its runs; name them in {tenant.settings_file} as "
            '[tenant.runtime] adapters = ["snowflake"] (the `type` of its targets\' profiles)'
        )
    unknown = [kind for kind in found if kind not in ADAPTER_PACKAGES]
    if unknown:
        raise DeploymentError(
            f"tenant {tenant.name}: adapter {unknown[0]!r} of {profiles} has no known package; add it to "
            "[tenant.runtime] packages (e.g. 'dbt-<adapter>') and set adapters to the known ones"
        )
    return tuple(found)


def runtime_packages(tenant: TenantSettings) -> list[str]:
    """What a run of the tenant needs: Prefect, dbt, its adapters, its store's fsspec backend, its own packages."""
    names = [*RUNTIME_PACKAGES]
    for adapter in tenant_adapters(tenant):
        names += ADAPTER_PACKAGES[adapter]
    for url in (tenant.artifact_store_url, tenant.ledger_url):
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme in STORE_BACKENDS:
            names.append(STORE_BACKENDS[scheme])
    names += tenant.runtime.packages
    return list(dict.fromkeys(names))


def _dependency_closure(top: dict[str, str], pins: Mapping[str, str], python: str) -> dict[str, str]:
    """`top` plus every pinned package they depend on, as the installed distributions' metadata says.

    A package not installed here contributes its own pin only (its dependencies are then resolved at run start).
    """
    environment = {"python_version": python, "python_full_version": f"{python}.0", "extra": ""}
    versions = dict(top)
    queue = list(top)
    while queue:
        name = queue.pop()
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for line in requires:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate(environment):
                continue
            dependency = _normalised(requirement.name)
            if dependency in versions or dependency not in pins:
                continue
            versions[dependency] = pins[dependency]
            queue.append(dependency)
    return dict(sorted(versions.items()))


def _constraints_text() -> str:
    path = REPO_ROOT / "constraints.txt"
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DeploymentError(f"cannot read pinned versions from {path}: {exc.strerror or exc}") from None


def runtime_versions(tenant: TenantSettings | None = None) -> dict[str, str]:
    """The top-level runtime pins of this checkout's constraints.txt: `RUNTIME_PACKAGES`, or the tenant's.

    Raises:
        DeploymentError: the file cannot be read or lacks a pin.
    """
    return pinned_versions(_constraints_text(), RUNTIME_PACKAGES if tenant is None else runtime_packages(tenant))


def _versions_for(tenant: TenantSettings) -> dict[str, str]:
    """The tenant's runtime pins where the deployment installs packages; else only Prefect's (the image tag)."""
    return runtime_versions(tenant if tenant.runtime.dependencies == "pip_packages" else None)


def runtime_pins(tenant: TenantSettings, top: Mapping[str, str]) -> dict[str, str]:
    """Every pin the runtime installs: the top-level packages and all their pinned dependencies, so a run start
    installs the versions tested here, not whatever is newest that day."""
    return _dependency_closure(dict(top), _pins(_constraints_text()), tenant.image_python)


def ledger_active_flags(ledger: Ledger, job_ids: Iterable[int]) -> dict[int, bool]:
    """Whether each job's Prefect schedule is on, as the cutover ledger says: on once the job is cut over.

    Raises:
        DeploymentError: a job's cutover or rollback is half done, so its flag is not known; finish it first.
        LedgerError: the ledger cannot be read.
    """
    flags: dict[int, bool] = {}
    for job_id in job_ids:
        state = ledger.state(job_id)
        if state in (LedgerState.CUTOVER_IN_PROGRESS, LedgerState.ROLLBACK_IN_PROGRESS):
            raise DeploymentError(
                f"job {job_id}: {state.value} in the ledger {ledger.url}, so its schedule's active flag is unknown; "
                f"finish it (`dbt2prefect cutover --job {job_id}` or `dbt2prefect rollback --job {job_id}`) first"
            )
        flags[job_id] = state is LedgerState.CUT_OVER
    return flags


def _code_root(tenant: TenantSettings, settings: Path) -> Path:
    """The folder a worker runs in: the local folder, or the git checkout that holds the settings file."""
    storage = tenant.code_storage
    if storage is not None and storage.directory is not None:
        return storage.directory
    return next((folder for folder in settings.parents if (folder / ".git").exists()), REPO_ROOT)


def _tenant_file_value(tenant: TenantSettings) -> str:
    """The settings file as the worker sees it: relative to the code's folder when it lives inside it."""
    settings = tenant.settings_file
    if settings is None:
        raise DeploymentError(f"tenant {tenant.name} has no settings file; load it with load_tenant()")
    root = _code_root(tenant, settings)
    if settings.is_relative_to(root):
        return settings.relative_to(root).as_posix()
    if tenant.code_storage is not None and tenant.code_storage.repository is not None:
        raise DeploymentError(
            f"tenant settings file {settings} is outside the repository {root}, so a worker that clones "
            f"{tenant.code_storage.repository} cannot read it; keep it in the repository (under tenants/)"
        )
    return str(settings)


PLACEHOLDER_REPOSITORY = "OWNER/REPO"
"""What the shipped settings and commands have in place of the team's GitHub repository; `apply` and `emit`
refuse it (see `placeholder_problem`)."""


def cloned_repository(spec: DeploymentSpec) -> str | None:
    """The git URL the deployment's `git_clone` pull step clones, or None (code in a local folder)."""
    for step in spec.pull_steps:
        clone = step.get("prefect.deployments.steps.git_clone")
        if clone is not None:
            return str(clone.get("repository", ""))
    return None


def placeholder_problem(spec: DeploymentSpec) -> str | None:
    """What is wrong when the code storage still names the shipped placeholder repository, else None.

    `apply` and `emit` refuse such a deployment: `prefect deploy` accepts it and every run then dies at `git_clone`.
    """
    repository = cloned_repository(spec)
    if repository is None or PLACEHOLDER_REPOSITORY not in repository:
        return None
    return (
        f"[tenant.code_storage] repository is still the placeholder {repository!r}: workers would clone "
        "nothing; set it to the git URL of the repository that holds this project and flows/"
    )


def local_store_problem(spec: DeploymentSpec) -> str | None:
    """What is wrong when a store is a local folder but the deployment's runs happen elsewhere, else None.

    A run on any pool but `process` is a container (managed, docker, kubernetes) whose folders vanish with it:
    artifacts written there never reach parity, CI or the next run's `--state`. `apply`, `emit` and `doctor`
    refuse it.
    """
    if spec.pool_type == "process":
        return None
    for setting, url in spec.stores.items():
        if is_local_url(url):
            return (
                f"{setting} {url!r} is a local folder, but runs on the {spec.pool_type} pool {spec.work_pool!r} "
                "happen in a container whose folders vanish with it; set it to object storage the runs, the "
                "operators and CI all reach, e.g. s3://<bucket>/<path> (README, 'Run it on Prefect Cloud'), or "
                "run on a process pool"
            )
    return None


def pull_steps(tenant: TenantSettings) -> list[dict[str, Any]]:
    """The steps a worker runs before the flow: fetch the code, then (for `requirements`) install the pins.

    Raises:
        DeploymentError: the tenant has no `[tenant.code_storage]`.
    """
    storage = tenant.code_storage
    if storage is None:
        raise DeploymentError(
            f"tenant {tenant.name} has no [tenant.code_storage] in {tenant.settings_file}: set `repository` (the git "
            "URL workers clone) or `directory` (a folder the worker can read); see README, 'Run it on Prefect Cloud'"
        )
    steps: list[dict[str, Any]] = []
    if storage.repository is not None:
        clone: dict[str, Any] = {"id": CLONE_STEP_ID, "repository": storage.repository, "branch": storage.branch}
        if storage.credentials_block is not None:
            kind, _, name = storage.credentials_block.partition("/")
            key = "access_token" if kind == "secret" else "credentials"
            clone[key] = "{{ prefect.blocks." + f"{kind}.{name}" + " }}"
        steps.append({"prefect.deployments.steps.git_clone": clone})
        directory = "{{ " + CLONE_STEP_ID + ".directory }}"
    else:
        directory = str(storage.directory)
        steps.append({"prefect.deployments.steps.set_working_directory": {"directory": directory}})
    if tenant.runtime.dependencies == "requirements":
        steps.append(
            {
                "prefect.deployments.steps.pip_install_requirements": {
                    "directory": directory,
                    "requirements_file": tenant.runtime.requirements_file,
                    "stream_output": False,
                }
            }
        )
    return steps


def job_variables(tenant: TenantSettings, versions: Mapping[str, str]) -> dict[str, Any]:
    """The worker's job variables: the tenant settings file, and the image and packages the runtime needs.

    `versions` are the runtime's top-level pins; the packages installed at run start are those and every pinned
    dependency of theirs (`runtime_pins`), and the image is that of the exact pinned Prefect version.
    """
    variables: dict[str, Any] = {"env": {TENANT_FILE_ENV: _tenant_file_value(tenant)}}
    runtime = tenant.runtime
    if runtime.dependencies != "preinstalled" and runtime.pool_type != "process":
        variables["image"] = runtime.image or IMAGE_TEMPLATE.format(
            prefect=versions["prefect"], python=tenant.image_python
        )
    if runtime.dependencies == "pip_packages":
        pins = runtime_pins(tenant, versions)
        variables["pip_packages"] = [f"{name}=={version}" for name, version in pins.items()]
    return variables


def command_summary(parameters: RunParameters) -> str:
    """What a run with these parameters runs, in one line: its dbt command lines (`steps`), or the command with
    its selection, and the checkboxes dbt Cloud shows next to them."""
    if parameters.steps:
        words = list(parameters.steps)
    else:
        line = f"dbt {parameters.command}"
        for flag, value in (
            ("--select", parameters.select),
            ("--exclude", parameters.exclude),
            ("--selector", parameters.selector),
        ):
            if value:
                line += f" {flag} {value}"
        if parameters.full_refresh:
            line += " --full-refresh"
        words = [line]
    if parameters.source_freshness:
        words.insert(0, "dbt source freshness (may fail)")
    if parameters.generate_docs:
        words.append("dbt docs generate (may fail)")
    return "; ".join(words)


def jobs_table(schedules: Iterable[PlannedSchedule], triggers: Iterable[PlannedTrigger]) -> str:
    """The deployment's jobs as a Markdown table: id, name, when it runs, target, what it runs.

    Every cell is escaped (`dbt2prefect.escaping.markdown_cell`): job names and selections are data, and the
    Prefect UI renders the description as Markdown with HTML.
    """
    rows: list[tuple[int, str, str, str, str, str]] = []
    for s in schedules:
        when = f"cron {s.cron}" if s.cron is not None else f"rrule {s.rrule}"
        if s.timezone != "UTC":
            when += f" ({s.timezone})"
        rows.append(
            (s.job_id, s.job_name, s.slug, when, s.run_parameters.target or "", command_summary(s.run_parameters))
        )
    for t in triggers:
        when = f"after job {t.upstream_job_id} ({t.upstream_job_name}) ends {' or '.join(t.states)}"
        rows.append(
            (t.job_id, t.job_name, t.name, when, t.run_parameters.target or "", command_summary(t.run_parameters))
        )
    lines = [
        "| job id | job name | schedule or trigger | runs | target | command |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in sorted(rows, key=lambda r: (r[0], r[2])):
        lines.append("| " + " | ".join(markdown_cell(cell) for cell in row) + " |")
    return "\n".join(lines)


def deployment_description(plan: MigrationPlan) -> str:
    """The deployment's description (Markdown, as the Prefect UI shows it): what it is, and a table of its jobs."""
    intro = markdown_text(
        f"dbt Cloud jobs of tenant {plan.tenant}: one schedule per scheduled job (slug job-<id>--<job name>), one "
        "trigger per chained job (job-<id>-after-job-<upstream id>). Each run is named job-<id> <job name> and "
        "tagged dbt-cloud-job-<id>."
    )
    if not plan.schedules and not plan.triggers:
        return intro
    return f"{intro}\n\n{jobs_table(plan.schedules, plan.triggers)}\n"


def build_deployment(
    plan: MigrationPlan,
    tenant: TenantSettings,
    *,
    versions: Mapping[str, str] | None = None,
    active: Mapping[int, bool] | None = None,
) -> DeploymentSpec:
    """The one description of the tenant's deployment.

    Args:
        plan: the migration plan (schedules and their parameters).
        tenant: the tenant settings (code storage, runtime, work pool).
        versions: runtime pins; default this checkout's (see `runtime_versions`).
        active: job id -> its schedule on, its notification automations on and the triggers of the jobs chained
            to it (see `ledger_active_flags`); a job not listed is off.

    Raises:
        DeploymentError: the tenant lacks code storage or the settings file is out of the worker's reach.
    """
    flags = dict(active or {})
    schedules = [
        ScheduleSpec(
            slug=s.slug,
            cron=s.cron if s.rrule is None else None,
            rrule=s.rrule,
            day_or=s.day_or,
            timezone=s.timezone,
            active=bool(flags.get(s.job_id, False)),
            parameters=s.run_parameters,
        )
        for s in plan.schedules
    ]
    triggers = [
        TriggerSpec(
            name=t.name,
            description=f"dbt Cloud job {t.job_id} ({t.job_name}) after job {t.upstream_job_id} "
            f"({t.upstream_job_name}) ends {' or '.join(t.states)}",
            enabled=bool(flags.get(t.upstream_job_id, False)),
            upstream_run_name=run_name_prefix(t.upstream_job_id),
            states=list(t.states),
            parameters=t.run_parameters,
        )
        for t in plan.triggers
    ]
    full_name = f"{plan.flow_name}/{plan.deployment_name}"
    notifications = [
        NotificationSpec(
            name=n.name,
            description=f"dbt Cloud notification {n.notification_id} of job {n.job_id} ({n.job_name}) to "
            f"{n.destination}: {', '.join(n.outcomes)}",
            enabled=bool(flags.get(n.switch_job_id, False)),
            job_id=n.job_id,
            destination=n.destination,
            run_name=runs_of_job(n.job_id),
            states=list(n.states),
            events=list(n.events),
            block=n.block,
            subject=f"dbt job {jinja_text(n.job_name)}: {_EVENT_WORDS}",
            body=(
                f"Run {{{{ flow_run.name }}}} of {jinja_text(full_name)}: {_EVENT_WORDS}.\n"
                f"{_WARNED_NODES}{{{{ flow_run.state.message or '' }}}}\n{{{{ (flow_run|ui_url) or '' }}}}\n"
                f"It runs dbt Cloud job {n.job_id} ({jinja_text(n.job_name)}); dbt Cloud notification "
                f"{n.notification_id} sent this to {jinja_text(n.destination)}."
            ),
        )
        for n in plan.notifications
    ]
    for group in before_start_groups(plan.notifications):
        jobs = ", ".join(f"{job_id} ({name})" for job_id, name in group.jobs)
        notifications.append(
            NotificationSpec(
                name=group.name,
                description=f"dbt Cloud notification {group.notification_id} to {group.destination}: runs of jobs "
                f"{', '.join(str(j) for j, _ in group.jobs)} that die before the flow starts",
                enabled=any(flags.get(j, False) for j in group.switch_job_ids),
                job_id=0,
                destination=group.destination,
                run_name=UNNAMED_RUN,
                states=list(BEFORE_START_STATES),
                events=[],
                block=group.block,
                subject=f"dbt job {{{{ flow_run.parameters.dbt_cloud_job_name or flow_run.name }}}}: "
                f"{_EVENT_WORDS} before the flow started",
                body=(
                    f"Run {{{{ flow_run.name }}}} of {jinja_text(full_name)}: {_EVENT_WORDS} before the flow "
                    "started (fetching the code, installing packages or the infrastructure).\n"
                    "{{ flow_run.state.message or '' }}\n{{ (flow_run|ui_url) or '' }}\n"
                    "It runs dbt Cloud job {{ flow_run.parameters.dbt_cloud_job_id or '(none)' }}; dbt Cloud "
                    f"notification {group.notification_id} sends the failures of jobs {jinja_text(jobs)} to "
                    f"{jinja_text(group.destination)}."
                ),
                switch_job_ids=list(group.switch_job_ids),
            )
        )
    guard_triggers = [
        GuardTriggerSpec(
            name=guard_trigger_name(s.job_id),
            description=f"The first {tenant.shadow.guarded_runs} run(s) of dbt Cloud job {s.job_id} after cutover: "
            f"a failed run starts the guard ({tenant.shadow.guard_action})",
            enabled=bool(flags.get(s.job_id, False)),
            job_id=s.job_id,
        )
        for s in plan.schedules
        if tenant.shadow.guarded_runs > 0
    ]
    return DeploymentSpec(
        tenant=plan.tenant,
        flow_name=plan.flow_name,
        name=plan.deployment_name,
        description=deployment_description(plan),
        entrypoint=plan.entrypoint,
        work_pool=plan.work_pool,
        pool_type=tenant.runtime.pool_type,
        parameters=plan.deployment_parameters.to_api(),
        pull_steps=pull_steps(tenant),
        job_variables=job_variables(tenant, _versions_for(tenant) if versions is None else versions),
        schedules=schedules,
        triggers=triggers,
        notifications=notifications,
        shadow_trigger=shadow_trigger(plan.deployment_name) if tenant.shadow.enabled else None,
        guard_triggers=guard_triggers,
        stores={
            "artifact_store_url": tenant.artifact_store_url,
            "ledger_url": tenant.ledger_url,
            "parity_report_url": tenant.parity_report_root,
        },
    )


def tenant_deployment(
    plan: MigrationPlan, tenant: TenantSettings, ledger: Ledger, *, activate: bool = False
) -> DeploymentSpec:
    """`build_deployment` with this checkout's pins and the flags of the tenant's cutover ledger.

    Args:
        ledger: the tenant's cutover ledger, which says whether each job's schedule is on.
        activate: every schedule on, whatever the ledger says (a tenant that skips the cutover gate).
    """
    job_ids = list(
        dict.fromkeys(
            [s.job_id for s in plan.schedules]
            + [t.upstream_job_id for t in plan.triggers]
            + [n.switch_job_id for n in plan.notifications]
        )
    )
    flags = dict.fromkeys(job_ids, True) if activate else ledger_active_flags(ledger, job_ids)
    return build_deployment(plan, tenant, active=flags)
