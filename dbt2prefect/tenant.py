"""Tenant settings: one TOML file per tenant, next to the tenant's dbt project folder.

A second tenant needs only `tenants/<name>/` (its dbt project) and `tenants/<name>.toml`.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from dbt2prefect.dbt_cloud import host_problem
from dbt2prefect.errors import ConfigError
from dbt2prefect.files import durable_url_problem, redact_url, segment_problem
from dbt2prefect.node_view import ALL_VIEW_EVENTS_PER_NODE
from dbt2prefect.params import NodeTaskRuns
from dbt2prefect.profile_fields import ADAPTER_PACKAGES
from dbt2prefect.reasons import ReasonCode

REPO_ROOT = Path(__file__).resolve().parent.parent
_PACKAGE_SPEC = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(==[A-Za-z0-9][A-Za-z0-9.+!_-]*)?")
TENANTS_DIR = REPO_ROOT / "tenants"
DEFAULT_TENANT = "dbt_williamgrant"

BUNDLED_RAW_LOADERS = ("sandbox.datagen:generate",)
"""Raw-data loaders a tenant may name by module (the sandbox's generator); any other loader is a Python file in
the tenant's dbt project folder, `'<path>.py:<function>'`. A settings file never names an importable callable."""

_BLOCK_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
"""Prefect block document names (and block type slugs): lowercase letters, digits and dashes."""
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IMAGE = re.compile(
    r"[a-z0-9][a-z0-9._/-]*(:[0-9]+/[a-z0-9._/-]+)?(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?"
)
_PYTHON = re.compile(r"3\.[0-9]{1,2}")
_SCP_LIKE = re.compile(r"[A-Za-z0-9_.-]+@[A-Za-z0-9.-]+:[A-Za-z0-9_./~-]+")
_REPOSITORY_SCHEMES = ("https", "ssh", "file")
"""git URLs a worker may clone: encrypted, or a repository on a disk it mounts (no git://, http://, ext::...)."""


def _unprintable(value: str) -> bool:
    return any(not ch.isprintable() for ch in value)


def _no_password(url: str) -> None:
    """Refuse a storage URL that carries a secret (settings files hold none; the backend reads its own)."""
    links = [urlsplit(link) for link in url.split("::") if "://" in link]
    if any(":" in link.netloc.rpartition("@")[0] for link in links):
        raise ValueError(
            f"{redact_url(url)!r} holds a password; remove it and give the storage backend its credentials in "
            "the environment (e.g. AWS_* variables for s3://)"
        )


def _job_id_list(setting: str, value: tuple[int, ...]) -> tuple[int, ...]:
    """`value` when it lists positive job ids, each once; else a ValueError naming `setting` and the fix."""
    bad = [job for job in value if job <= 0]
    if bad:
        raise ValueError(f"{setting}: {bad[0]} is not a dbt Cloud job id; list positive job ids, e.g. [70403103936332]")
    if len(set(value)) != len(value):
        raise ValueError(f"{setting}: a job id is listed twice; list each job once")
    return value


def block_name_problem(value: str) -> str | None:
    """Why `value` cannot be a Prefect block name (or block type slug), or None."""
    if _BLOCK_NAME.fullmatch(value):
        return None
    return f"{value!r} is not a Prefect block name: use lowercase letters, digits and '-' (e.g. 'dbt-wg')"


def relative_path_problem(value: str, what: str) -> str | None:
    """Why `value` is not a relative path that stays inside its folder (`what` names the folder), or None."""
    if not value.strip() or _unprintable(value) or value != value.strip():
        return f"{value!r} must be a non-empty path without line breaks or surrounding spaces"
    path = PurePosixPath(value.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or value.startswith("~") or ":" in path.parts[0]:
        return f"{value!r} must be a path relative to {what}, inside it (no leading '/', no '..')"
    return None


def acknowledgement_problem(value: str) -> str | None:
    """Why `value` is not a finding key '<reason_code>:<job_id>' of a known reason code, or None."""
    code, _, job = value.partition(":")
    codes = [c.value for c in ReasonCode]
    if code not in codes:
        nearest = difflib.get_close_matches(code.strip().lower(), codes, n=1, cutoff=0.5)
        hint = f"did you mean '{nearest[0]}:{job or '<job_id>'}'? " if nearest else ""
        return (
            f"{value!r} is not '<reason_code>:<job_id>' with a reason code `plan` reports; {hint}"
            f"the codes are {', '.join(sorted(codes))}; copy the key from the plan's findings"
        )
    if not job.isdigit() or int(job) <= 0:
        return f"{value!r}: the job id after ':' must be a positive dbt Cloud job id, e.g. '{code}:70403103936332'"
    return None


class BlockNames(BaseModel):
    """Names of the Prefect blocks that hold each target's connection (one block per target)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    profile_prefix: str = Field(
        description="Block name prefix; the block for target T is '<prefix>-<T>'.",
    )
    dbt_cloud_token_block: str = Field(description="Secret block holding the dbt Cloud API token.")
    dbt_cloud_webhook_secret_block: str | None = Field(
        default=None,
        description="Secret block holding the secret of the dbt Cloud webhook (job.run.completed) whose signed "
        "deliveries report completed runs; unset where runs are polled instead.",
    )

    @field_validator("profile_prefix", "dbt_cloud_token_block", "dbt_cloud_webhook_secret_block")
    @classmethod
    def _block_names(cls, value: str | None) -> str | None:
        if value is None:
            return None
        problem = block_name_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class DbtCloudSettings(BaseModel):
    """Where the tenant's dbt Cloud account lives."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "https://cloud.getdbt.com"
    account_id: int = Field(default=0, ge=0)
    project_id: int | None = Field(default=None, gt=0)
    token_env: str = "DBT_CLOUD_API_TOKEN"
    rate_limit_minutes: float = Field(
        default=10.0,
        gt=0,
        le=120,
        description="How long one API request may keep waiting on 429 answers (dbt Cloud's cooldown is 5 min).",
    )

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        problem = host_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("token_env")
    @classmethod
    def _token_env(cls, value: str) -> str:
        if not _ENV_NAME.fullmatch(value):
            raise ValueError(
                f"{value!r} is not an environment variable name: use letters, digits and '_', e.g. "
                "'DBT_CLOUD_API_TOKEN'"
            )
        return value


class CodeStorage(BaseModel):
    """Where a worker gets the flow's code: a git repository (production) or a folder it can read (sandbox, laptops).

    Exactly one of `repository` and `directory` is set. A private repository needs `credentials_block`, the
    Prefect block that holds its credentials as `<block-type-slug>/<block-name>` (e.g.
    `github-credentials/wg-repo` from prefect-github, or `secret/wg-github-token` for an access token).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    repository: str | None = Field(default=None, description="git URL the worker clones (git_clone pull step).")
    branch: str = "main"
    credentials_block: str | None = None
    directory: Path | None = Field(default=None, description="Folder the worker runs in (set_working_directory).")

    @model_validator(mode="after")
    def _one_source(self) -> CodeStorage:
        if (self.repository is None) == (self.directory is None):
            raise ValueError("set exactly one of `repository` (production) and `directory` (a local folder)")
        if self.credentials_block is not None:
            kind, _, name = self.credentials_block.partition("/")
            if block_name_problem(kind) is not None or block_name_problem(name) is not None:
                raise ValueError(
                    f"credentials_block {self.credentials_block!r} must be '<block-type-slug>/<block-name>' in "
                    "lowercase letters, digits and '-', e.g. 'github-credentials/wg-repo'"
                )
        return self

    @field_validator("directory")
    @classmethod
    def _directory(cls, value: Path | None) -> Path | None:
        if value is not None and value.exists() and not value.is_dir():
            raise ValueError(f"directory {value} is a file; point it at the folder that holds the flow's code")
        return value

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str | None) -> str | None:
        if value is None:
            return None
        fix = (
            "use an https:// or ssh:// URL (or git@host:path, or file:// for a local repository), "
            "e.g. 'https://github.com/acme/dbt.git'"
        )
        if value.startswith("-") or "::" in value:
            raise ValueError(f"repository {value!r} would be read by git as an option or a remote helper; {fix}")
        if not value or _unprintable(value) or value != value.strip() or " " in value:
            raise ValueError(f"repository {value!r} must be one URL without spaces or line breaks; {fix}")
        if _SCP_LIKE.fullmatch(value):
            return value
        parts = urlsplit(value)
        if parts.scheme not in _REPOSITORY_SCHEMES or not (parts.hostname or parts.scheme == "file"):
            raise ValueError(f"repository {redact_url(value)!r} is not a git URL git may clone safely; {fix}")
        if parts.password is not None or (parts.username is not None and parts.scheme == "https"):
            raise ValueError(
                f"repository {redact_url(value)!r} holds credentials; remove them from the URL and name the "
                "Prefect block that holds them in credentials_block"
            )
        return value

    @field_validator("branch")
    @classmethod
    def _branch(cls, value: str) -> str:
        bad = (
            not value
            or _unprintable(value)
            or any(ch in value for ch in " ~^:?*[\\")
            or value.startswith(("-", "/", "."))
            or value.endswith(("/", ".", ".lock"))
            or ".." in value
            or "//" in value
            or "@{" in value
        )
        if bad:
            raise ValueError(
                f"branch {value!r} is not a git branch name: one line without spaces, '..', '~^:?*[\\' or a "
                "leading '-', e.g. 'main'"
            )
        return value


class Runtime(BaseModel):
    """How the worker's flow-run process gets the pinned packages (the toolkit itself comes with the code).

    `pip_packages`: an image with Prefect plus the pins from constraints.txt installed at run start (managed and
    docker pools); `requirements`: a `pip_install_requirements` pull step on `requirements_file` of the code;
    `image`: `image` already holds everything; `preinstalled`: the worker's own environment does (process pools).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    pool_type: Literal["process", "prefect:managed", "docker", "kubernetes"] = "prefect:managed"
    dependencies: Literal["pip_packages", "requirements", "image", "preinstalled"] = "pip_packages"
    image: str | None = Field(
        default=None, description="Default: prefecthq/prefect-client:<pinned Prefect version>-python<image_python>."
    )
    requirements_file: str = "requirements.txt"
    adapters: tuple[str, ...] = Field(
        default=(),
        description=(
            "dbt adapter types the tenant's targets use (their profile blocks' and profiles.yml's `type`), e.g. "
            "['snowflake']; default: the types in the tenant's local profiles.yml."
        ),
    )
    packages: tuple[str, ...] = Field(
        default=(),
        description="More packages for the runtime: a name pinned in constraints.txt, or 'name==version'.",
    )

    @field_validator("adapters")
    @classmethod
    def _known_adapters(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in value if name not in ADAPTER_PACKAGES]
        if unknown:
            raise ValueError(
                f"unknown adapter {unknown[0]!r}; use one of {', '.join(ADAPTER_PACKAGES)}, or name its package "
                "in `packages`"
            )
        return value

    @field_validator("packages")
    @classmethod
    def _package_specs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for spec in value:
            if not _PACKAGE_SPEC.fullmatch(spec):
                raise ValueError(f"package {spec!r} must be a name or 'name==version', e.g. 'dbt-bigquery==1.10.0'")
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is not None and not _IMAGE.fullmatch(value):
            raise ValueError(
                f"image {value!r} is not a container image reference: '[registry/]name[:tag][@sha256:digest]' in "
                "lowercase, e.g. 'ghcr.io/acme/dbt-runner:1.4'"
            )
        return value

    @field_validator("requirements_file")
    @classmethod
    def _requirements_file(cls, value: str) -> str:
        problem = relative_path_problem(value, "the repository's root")
        if problem is not None:
            raise ValueError(f"requirements_file {problem}")
        return value

    @model_validator(mode="after")
    def _fits_the_pool(self) -> Runtime:
        if self.pool_type == "process" and self.dependencies in ("pip_packages", "image"):
            raise ValueError(
                f"a process pool runs in the worker's own environment: dependencies {self.dependencies!r} needs an "
                "image; use 'preinstalled' or 'requirements', or another pool_type"
            )
        return self


class RetrySettings(BaseModel):
    """Automatic retries of a run whose failure is transient (`[tenant.retries]`).

    Only a lock, a lost connection or a statement/warehouse timeout, as dbt's own messages say, is retried (from
    the point of failure, with `dbt retry`); any other dbt error fails the run on its first attempt, as in dbt
    Cloud. `transient = 0` turns automatic retries off. A person can still rerun from the point of failure with
    a `command = "retry"` run or Prefect's Retry button.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    transient: int = Field(
        default=1, ge=0, le=5, strict=True, description="Retries after a transient failure (0 to 5)."
    )
    delay_seconds: float = Field(default=30.0, ge=0, le=3600, description="Wait before each retry (0 to 3600 s).")


PLAN_LOGS_EVENTS_PER_MINUTE = {"Hobby": 2_000, "Starter": 2_800, "Team": 8_000, "Pro": 40_000}
"""Prefect Cloud's "Logs + Events" limit per minute and account, by plan (docs/performance.md names the source)."""
PLAN_API_REQUESTS_PER_MINUTE = {"Hobby": 625, "Starter": 1_250, "Team": 2_500, "Pro": 5_000}
"""Prefect Cloud's API requests per minute and account, by plan (docs/performance.md names the source)."""
MIN_LOGS_EVENTS_PER_MINUTE = 200
"""Below this a run has no room for its own lines and events (about 25) plus a task run for a failed node."""


DEFAULT_SLOW_NODE_SECONDS = 300.0
"""A node that ran longer than this is slow (`slow_node_seconds`): it gets a task run in the "exceptions" mode."""


class ObservabilitySettings(BaseModel):
    """What a run may send to Prefect (`[tenant.observability]`).

    Prefect Cloud counts every log line and every event (a task run's state changes, asset events) of an account in
    one per-minute bucket. A run keeps its own share under `logs_events_per_minute`: nodes get a task run and their
    dbt log lines while that fits; the others are left out of the task runs, their statuses stay in the run's node
    table, and the run's summary says how many were left out and why.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    logs_events_per_minute: int = Field(
        default=PLAN_LOGS_EVENTS_PER_MINUTE["Hobby"],
        strict=True,
        description=(
            "The log lines and events per minute a run may send to Prefect: the plan's Logs + Events limit, less "
            "what the workspace's other flows send (default 2000, the smallest plan's limit)."
        ),
    )

    node_task_runs: NodeTaskRuns = Field(
        default="auto",
        description=(
            "Which dbt nodes get a Prefect task run (a run's `node_task_runs` parameter overrides it): 'all', a "
            "task run per node while dbt runs, with asset events and the node's log lines (about "
            f"{ALL_VIEW_EVENTS_PER_NODE:g} log lines and events per node); 'states', a task run per node while dbt "
            "runs in lean mode, recorded from dbt's events with its state alone (1 event per node, counted as 2); "
            "'exceptions', dbt runs in lean mode and only the "
            "nodes that failed, warned or ran longer than slow_node_seconds get a task run afterwards; or 'auto' "
            "(the default), 'states' while the project's nodes times 2 fit in logs_events_per_minute, else "
            "'exceptions' ('all' only when set). Every node stays in the run's node table."
        ),
    )
    api_requests_per_minute: int = Field(
        default=PLAN_API_REQUESTS_PER_MINUTE["Hobby"],
        strict=True,
        description=(
            "The API requests per minute a run may make to record task runs (node_task_runs = 'exceptions', and "
            "'states' where its state events do not apply: 2 requests each): the plan's API requests limit, less "
            "what the workspace's other clients make (default 625, the smallest plan's limit)."
        ),
    )
    slow_node_seconds: float = Field(
        default=DEFAULT_SLOW_NODE_SECONDS,
        gt=0,
        description="With node_task_runs = 'exceptions', a node that ran longer than this gets a task run.",
    )

    @field_validator("logs_events_per_minute", "api_requests_per_minute")
    @classmethod
    def _per_minute(cls, value: int, info: ValidationInfo) -> int:
        if value < MIN_LOGS_EVENTS_PER_MINUTE:
            events = info.field_name == "logs_events_per_minute"
            table = PLAN_LOGS_EVENTS_PER_MINUTE if events else PLAN_API_REQUESTS_PER_MINUTE
            plans = ", ".join(f"{plan} {limit}" for plan, limit in table.items())
            what = "log lines and events" if events else "API requests"
            limit = "Logs + Events" if events else "API requests"
            raise ValueError(
                f"{info.field_name} = {value} leaves a run no room for its own {what}; set at "
                f"least {MIN_LOGS_EVENTS_PER_MINUTE}, e.g. your Prefect Cloud plan's {limit} limit ({plans})"
            )
        return value


class ShadowSettings(BaseModel):
    """The parallel-run period (`[tenant.shadow]`): which dbt Cloud runs get a Prefect twin, when a job has earned
    its cutover, and the guarded window after it.

    A job's readiness is its streak of consecutive PASS shadow pairs (ordered by the dbt Cloud runs' finish times)
    and the days that streak covers (first to last pair). Once a job has a shadow pair, `cutover` gates it on
    `required_passes` and `required_days` instead of its latest parity verdict; with `required = true` a shadowed
    job without any pair is refused too.

    With `enabled = true`, `apply` deploys the shadow flow (`<deployment>-shadow`) with a trigger on every completed
    dbt Cloud run: each successful run of a job in shadow (every `sample`-th) gets its twin and its pair.

    After cutover, the first `guarded_runs` Prefect runs of each job are watched: a run that ends Failed or Crashed
    where dbt Cloud's recent runs of the job (before cutover) did not fail notifies the job's destinations and, with
    `guard_action = "rollback"`, rolls the job back to dbt Cloud.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(
        default=False,
        description="Shadow runs: deploy the shadow flow, started by every completed dbt Cloud run (default off).",
    )
    required_passes: int = Field(
        default=3, ge=1, le=1000, strict=True, description="K: consecutive PASS pairs a job needs (1 to 1000)."
    )
    required_days: float = Field(
        default=1.0, ge=0, le=365, description="D: days the streak must cover, first pair to last (0 to 365)."
    )
    jobs: tuple[int, ...] | None = Field(
        default=None, description="The dbt Cloud job ids in shadow (default: every migrated job)."
    )
    sample: int = Field(
        default=1,
        ge=1,
        le=1000,
        strict=True,
        description="Shadow every Nth successful dbt Cloud run of a job (1: every one).",
    )
    required: bool = Field(
        default=False, description="Refuse cutover of a shadowed job until it has pairs (not only once it has)."
    )
    guarded_runs: int = Field(
        default=5,
        ge=0,
        le=100,
        strict=True,
        description="N: the Prefect runs of each job after cutover that are watched (0 to 100; 0: none).",
    )
    guard_action: Literal["notify", "rollback"] = Field(
        default="notify",
        description="What a failure in the guarded window does: notify the job's destinations, or also roll it back.",
    )

    @field_validator("jobs")
    @classmethod
    def _job_ids(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("jobs = [] shadows no job; list dbt Cloud job ids, or leave jobs out to shadow every job")
        return _job_id_list("jobs", value)

    def shadows(self, job_id: int) -> bool:
        """Whether the job is in shadow."""
        return self.jobs is None or job_id in self.jobs

    def takes(self, job_id: int, seen: int) -> bool:
        """Whether the `seen`-th successful dbt Cloud run of the job (1 for the first one heard of) gets a twin."""
        return self.shadows(job_id) and seen >= 1 and (seen - 1) % self.sample == 0


class SandboxSettings(BaseModel):
    """How the sandbox stands in for the tenant's dbt Cloud account and source systems (`[tenant.sandbox]`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    jobs_file: Path | None = Field(
        default=None,
        description="The account's jobs, as saved from GET /api/v2/accounts/{id}/jobs/ (default: the bundled seed).",
    )
    environments_file: Path | None = Field(
        default=None, description="Its environments, saved the same way (default: one made up per environment id)."
    )
    raw_loader: str | None = Field(
        default=None,
        description=(
            "'module:function' called with the warehouse folder, writing raw.duckdb (the source systems). "
            "Unset: the project's own seeds are its raw data."
        ),
    )
    raw_catalog: str | None = Field(
        default=None,
        description=(
            "Alias under which every target attaches raw.duckdb (the sources' database). Must not be the name "
            "of a schema of the project, or DuckDB reports an ambiguous reference."
        ),
    )
    warehouse: Path | None = Field(
        default=None,
        description=(
            "The folder of DuckDB files standing in for the warehouse; set in the settings a running sandbox "
            "writes, so that `blocks register --target T` saves T's block on the sandbox's file, as the sandbox does."
        ),
    )
    demo_jobs: tuple[int, ...] = Field(
        default=(), description="Jobs the demo runs in dbt Cloud and compares (default: every active job)."
    )
    demo_fired_job: int | None = Field(default=None, description="The cut-over job whose schedule the demo fires.")
    demo_acknowledged: tuple[str, ...] = Field(
        default=(), description="Blocker findings the demo acknowledges, as '<reason_code>:<job_id>'."
    )

    @field_validator("raw_loader")
    @classmethod
    def _raw_loader(cls, value: str | None) -> str | None:
        if value is None or value in BUNDLED_RAW_LOADERS:
            return value
        module, _, function = value.rpartition(":")
        if not module.endswith(".py") or not function.isidentifier():
            raise ValueError(
                f"raw_loader {value!r} must be '<file>.py:<function>', a Python file in the tenant's dbt project "
                f"folder (or one of {', '.join(repr(n) for n in BUNDLED_RAW_LOADERS)}); a settings file does not "
                "name importable modules"
            )
        return value

    @field_validator("raw_catalog")
    @classmethod
    def _raw_catalog(cls, value: str | None) -> str | None:
        if value is not None and not _IDENTIFIER.fullmatch(value):
            raise ValueError(f"raw_catalog {value!r} must be a SQL identifier (letters, digits, '_'), e.g. 'raw'")
        return value

    @field_validator("demo_jobs")
    @classmethod
    def _demo_jobs(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        return _job_id_list("demo_jobs", value)

    @field_validator("demo_fired_job")
    @classmethod
    def _fired_job(cls, value: int | None) -> int | None:
        if value is not None and value <= 0:
            raise ValueError(f"demo_fired_job {value} is not a dbt Cloud job id (a positive number)")
        return value

    @field_validator("demo_acknowledged")
    @classmethod
    def _demo_acknowledged(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for key in value:
            problem = acknowledgement_problem(key)
            if problem is not None:
                raise ValueError(f"demo_acknowledged: {problem}")
        return value

    @model_validator(mode="after")
    def _loader_for_the_catalog(self) -> SandboxSettings:
        if self.raw_catalog is not None and self.raw_loader is None:
            raise ValueError("raw_catalog needs raw_loader: without a loader there is no raw database to attach")
        if self.demo_jobs and self.demo_fired_job is not None and self.demo_fired_job not in self.demo_jobs:
            raise ValueError(
                f"demo_fired_job {self.demo_fired_job} is not one of demo_jobs; the demo fires the schedule of a job "
                "it compared: add it to demo_jobs or pick one of them"
            )
        return self


NOTIFICATION_DESTINATIONS = ("slack", "email", "user", "webhook")
"""How `[tenant.notifications]` keys name a dbt Cloud destination: `slack:<channel name or id>`,
`email:<address>`, `user:<dbt Cloud user id>` (an internal user's email), `webhook:<notification id>`."""


def _notification_problem(destination: str, block: str) -> str | None:
    kind, _, label = destination.partition(":")
    if kind not in NOTIFICATION_DESTINATIONS or not label.strip() or _unprintable(label):
        kinds = ", ".join(f"'{k}:...'" for k in NOTIFICATION_DESTINATIONS)
        return f"[tenant.notifications] key {destination!r} must be one of {kinds}, e.g. 'slack:#data-alerts'"
    slug, _, name = block.partition("/")
    if block_name_problem(slug) is not None or block_name_problem(name) is not None:
        return (
            f"[tenant.notifications] {destination!r} = {block!r} must name a Prefect notification block as "
            "'<block-type-slug>/<block-name>' in lowercase letters, digits and '-', e.g. 'slack-webhook/data-alerts'"
        )
    return None


class TenantSettings(BaseModel):
    """Everything that differs between tenants. Paths are resolved against the settings file's folder."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    project_dir: Path
    profile_name: str
    deployment_name: str
    flow_name: str = "run_dbt_wg"
    entrypoint: str = "flows/dbt_wg_flow.py:run_dbt_wg"
    default_target: str = "dev"
    targets: tuple[str, ...] = ("local", "dev", "prod", "parity")
    local_profiles_dir: Path | None = None
    artifact_store_url: str
    ledger_url: str
    parity_report_url: str | None = Field(
        default=None,
        description="Where parity reports and their latest.json live (default: <artifact_store_url>/<name>/parity).",
    )
    compare_and_swap: Literal["conditional", "lock"] = Field(
        default="conditional",
        description="How pointers in object storage are updated: conditional writes (S3 If-Match), or a lock object "
        "for S3-compatible stores without them.",
    )
    work_pool: str = "default"
    image_python: str = "3.12"
    blocks: BlockNames
    dbt_cloud: DbtCloudSettings = DbtCloudSettings()
    code_storage: CodeStorage | None = None
    runtime: Runtime = Runtime()
    retries: RetrySettings = RetrySettings()
    shadow: ShadowSettings = ShadowSettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    sandbox: SandboxSettings = SandboxSettings()
    acknowledged_findings: tuple[str, ...] = Field(
        default=(),
        description="Blocker findings a person has reviewed, as '<reason_code>:<job_id>'.",
    )
    settings_file: Path | None = None
    notifications: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "dbt Cloud notification destination (e.g. 'slack:#data-alerts', 'email:oncall@example.com', "
            "'user:<id>') → the Prefect notification block that sends to it, '<block-type-slug>/<block-name>'."
        ),
    )
    dbt_cloud_environments: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "dbt Cloud environment (id or name) → the tenant target whose profile block runs its jobs. In dbt "
            "Cloud the environment decides the connection; a job's target_name only sets target.name."
        ),
    )

    @field_validator("deployment_name", "name")
    @classmethod
    def _no_slash(cls, value: str) -> str:
        if not value or "/" in value:
            raise ValueError("must be non-empty and must not contain '/'")
        # Both name folders of the ledger and the artifact store.
        problem = segment_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("profile_name", "flow_name")
    @classmethod
    def _names(cls, value: str) -> str:
        problem = segment_problem(value)
        if problem is not None:
            raise ValueError(problem.replace("cannot be a folder name", "is not a name"))
        return value

    @field_validator("work_pool")
    @classmethod
    def _work_pool(cls, value: str) -> str:
        if not value.strip() or value != value.strip() or _unprintable(value) or any(c in value for c in "/%&<>"):
            raise ValueError(
                f"work_pool {value!r} is not a Prefect work pool name: one line, no surrounding spaces, no '/%&<>'"
            )
        return value

    @field_validator("image_python")
    @classmethod
    def _image_python(cls, value: str) -> str:
        if not _PYTHON.fullmatch(value):
            raise ValueError(f"image_python {value!r} must be a Python version such as '3.12'")
        return value

    @field_validator("entrypoint")
    @classmethod
    def _entrypoint(cls, value: str) -> str:
        path, _, function = value.rpartition(":")
        problem = relative_path_problem(path, "the repository's root") if path else None
        if not path.endswith(".py") or not function.isidentifier() or problem is not None:
            raise ValueError(
                f"entrypoint {value!r} must be '<file>.py:<flow function>' relative to the repository's root, "
                f"inside it, e.g. 'flows/dbt_wg_flow.py:run_dbt_wg'{f' ({problem})' if problem else ''}"
            )
        return value

    @field_validator("artifact_store_url", "ledger_url", "parity_report_url")
    @classmethod
    def _durable_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        _no_password(value)
        problem = durable_url_problem(value)
        if problem is not None:
            what = {
                "artifact_store_url": "the artifact store must outlive the runs that write it",
                "ledger_url": "the ledger must outlive the process that writes it",
                "parity_report_url": "parity reports must outlive the run that writes them",
            }[str(info.field_name)]
            raise ValueError(f"{what}: {problem}")
        return value

    @field_validator("local_profiles_dir")
    @classmethod
    def _profiles_dir(cls, value: Path | None) -> Path | None:
        if value is not None and value.exists() and not value.is_dir():
            raise ValueError(f"{value} is a file; point it at the folder that holds profiles.yml")
        return value

    @field_validator("targets")
    @classmethod
    def _some_targets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError('list at least one target, e.g. targets = ["dev", "prod"]')
        for name in value:
            problem = segment_problem(name)
            if problem is not None:
                raise ValueError(f"target {problem}")
        if len(set(value)) != len(value):
            raise ValueError("a target is listed twice; list each target once")
        return value

    @field_validator("acknowledged_findings")
    @classmethod
    def _acknowledged(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for key in value:
            problem = acknowledgement_problem(key)
            if problem is not None:
                raise ValueError(problem)
        return value

    @field_validator("dbt_cloud_environments")
    @classmethod
    def _environment_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not key.strip() or key != key.strip() or _unprintable(key):
                raise ValueError(f"key {key!r} must be a dbt Cloud environment id or name, without surrounding spaces")
        return value

    @field_validator("notifications")
    @classmethod
    def _notification_blocks(cls, value: dict[str, str]) -> dict[str, str]:
        for destination, block in value.items():
            problem = _notification_problem(destination, block)
            if problem is not None:
                raise ValueError(problem)
        return value

    def block_name(self, target: str) -> str:
        """Name of the profile block for one target."""
        return f"{self.blocks.profile_prefix}-{target}"

    @property
    def parity_report_root(self) -> str:
        """Where parity reports and their latest.json live: `parity_report_url`, else beside the run artifacts."""
        return self.parity_report_url or f"{self.artifact_store_url.rstrip('/')}/{self.name}/parity"

    @model_validator(mode="after")
    def _loader_in_the_project(self) -> TenantSettings:
        loader = self.sandbox.raw_loader
        if loader is None or loader in BUNDLED_RAW_LOADERS:
            return self
        file = Path(loader.rpartition(":")[0])
        project = self.project_dir.resolve()
        if not file.is_absolute() or not file.resolve().is_relative_to(project) or not file.resolve().is_file():
            raise ValueError(
                f"[tenant.sandbox] raw_loader {loader!r} must name a Python file inside the tenant's dbt project "
                f"folder {project} (relative to the settings file), e.g. '{project.name}/loaders/raw.py:load'"
            )
        return self

    @model_validator(mode="after")
    def _environments_use_known_targets(self) -> TenantSettings:
        if self.default_target not in self.targets:
            raise ValueError(
                f"default_target {self.default_target!r} is not one of targets ({', '.join(self.targets)}); "
                "add it to targets or pick one of them"
            )
        unknown = {env: t for env, t in self.dbt_cloud_environments.items() if t not in self.targets}
        if unknown:
            env, target = next(iter(unknown.items()))
            raise ValueError(
                f"[tenant.dbt_cloud_environments] maps {env!r} to {target!r}, which is not one of targets "
                f"({', '.join(self.targets)}); map it to one of them or add it to targets"
            )
        return self

    def environment_target(self, environment_id: int, environment_name: str | None = None) -> str | None:
        """The target whose profile block runs jobs of a dbt Cloud environment (by id, else by name), if mapped."""
        by_id = self.dbt_cloud_environments.get(str(environment_id))
        if by_id is not None or environment_name is None:
            return by_id
        return self.dbt_cloud_environments.get(environment_name)


def settings_path(tenant: str = DEFAULT_TENANT) -> Path:
    """The default settings file of a tenant."""
    return TENANTS_DIR / f"{tenant}.toml"


def _resolve(base: Path, value: Any) -> Any:
    if isinstance(value, str) and "://" not in value:
        path = Path(value).expanduser()
        return path if path.is_absolute() else (base / path).resolve()
    return value


def load_tenant(path: Path | str | None = None) -> TenantSettings:
    """Read and validate a tenant settings file.

    Args:
        path: the TOML file; default `tenants/dbt_williamgrant.toml`, or `$DBT2PREFECT_TENANT_FILE`
            when the caller passes it in.

    Raises:
        ConfigError: the file is missing, is not TOML, or a setting is invalid (the message names it).
    """
    file = Path(path) if path is not None else settings_path()
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"tenant settings file {file} does not exist; pass --tenant-file PATH") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"tenant settings file {file} is not valid TOML: {exc}") from None
    except OSError as exc:
        # A folder or an unreadable file: say which, not a traceback.
        raise ConfigError(
            f"tenant settings file {file} cannot be read ({exc.strerror or exc}); pass a TOML file as --tenant-file"
        ) from None
    base = file.resolve().parent
    tenant = raw.get("tenant", raw)
    if not isinstance(tenant, dict):
        raise ConfigError(f"tenant settings file {file}: [tenant] must be a table")
    others = sorted(set(raw) - {"tenant"}) if "tenant" in raw else []
    if others:
        raise ConfigError(
            f"tenant settings file {file}: unknown top-level table or key {others[0]!r}; settings belong under "
            "[tenant] (parity settings go in the .parity.toml file next to it)"
        )
    tenant = dict(tenant)
    for key in ("project_dir", "local_profiles_dir"):
        if key in tenant:
            tenant[key] = _resolve(base, tenant[key])
    for key in ("artifact_store_url", "ledger_url", "parity_report_url"):
        if key in tenant and isinstance(tenant[key], str) and "://" not in tenant[key]:
            tenant[key] = str(_resolve(base, tenant[key]))
    sandbox = tenant.get("sandbox")
    if isinstance(sandbox, dict):
        files = {
            key: _resolve(base, sandbox[key])
            for key in ("jobs_file", "environments_file", "warehouse")
            if key in sandbox
        }
        loader = sandbox.get("raw_loader")
        if isinstance(loader, str) and loader.rpartition(":")[0].endswith(".py"):
            module, _, function = loader.rpartition(":")
            files["raw_loader"] = f"{_resolve(base, module)}:{function}"
        tenant["sandbox"] = {**sandbox, **files}
    storage = tenant.get("code_storage")
    if isinstance(storage, dict) and "directory" in storage:
        tenant["code_storage"] = {**storage, "directory": _resolve(base, storage["directory"])}
    tenant["settings_file"] = file.resolve()
    try:
        settings = TenantSettings.model_validate(tenant)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
        )
        raise ConfigError(f"tenant settings file {file}: {problems}") from None
    if not settings.project_dir.is_dir():
        raise ConfigError(
            f"tenant settings file {file}: project_dir {settings.project_dir} is not a directory; "
            "point it at the tenant's dbt project folder"
        )
    return settings
