"""Tenant settings: one TOML file per tenant, next to the tenant's dbt project folder.

A second tenant needs only `tenants/<name>/` (its dbt project) and `tenants/<name>.toml`.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dbt2prefect.errors import ConfigError
from dbt2prefect.files import durable_url_problem, segment_problem
from dbt2prefect.profile_fields import ADAPTER_PACKAGES

REPO_ROOT = Path(__file__).resolve().parent.parent
_PACKAGE_SPEC = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(==[A-Za-z0-9][A-Za-z0-9.+!_-]*)?")
TENANTS_DIR = REPO_ROOT / "tenants"
DEFAULT_TENANT = "dbt_williamgrant"


class BlockNames(BaseModel):
    """Names of the Prefect blocks that hold each target's connection (one block per target)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    profile_prefix: str = Field(
        description="Block name prefix; the block for target T is '<prefix>-<T>'.",
    )
    dbt_cloud_token_block: str = Field(description="Secret block holding the dbt Cloud API token.")


class DbtCloudSettings(BaseModel):
    """Where the tenant's dbt Cloud account lives."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "https://cloud.getdbt.com"
    account_id: int = 0
    project_id: int | None = None
    token_env: str = "DBT_CLOUD_API_TOKEN"
    rate_limit_minutes: float = Field(
        default=10.0,
        gt=0,
        le=120,
        description="How long one API request may keep waiting on 429 answers (dbt Cloud's cooldown is 5 min).",
    )


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
            if not kind or not name or "/" in name:
                raise ValueError(
                    "credentials_block must be '<block-type-slug>/<block-name>', e.g. 'github-credentials/wg-repo'"
                )
        return self


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
    demo_jobs: tuple[int, ...] = Field(
        default=(), description="Jobs the demo runs in dbt Cloud and compares (default: every active job)."
    )
    demo_fired_job: int | None = Field(default=None, description="The cut-over job whose schedule the demo fires.")
    demo_acknowledged: tuple[str, ...] = Field(
        default=(), description="Blocker findings the demo acknowledges, as '<reason_code>:<job_id>'."
    )

    @model_validator(mode="after")
    def _loader_for_the_catalog(self) -> SandboxSettings:
        if self.raw_loader is not None:
            module, _, function = self.raw_loader.partition(":")
            if not module or not function.isidentifier():
                raise ValueError(f"raw_loader {self.raw_loader!r} must be 'module:function', e.g. 'mypkg.load:main'")
        if self.raw_catalog is not None and self.raw_loader is None:
            raise ValueError("raw_catalog needs raw_loader: without a loader there is no raw database to attach")
        return self


NOTIFICATION_DESTINATIONS = ("slack", "email", "user", "webhook")
"""How `[tenant.notifications]` keys name a dbt Cloud destination: `slack:<channel name or id>`,
`email:<address>`, `user:<dbt Cloud user id>` (an internal user's email), `webhook:<notification id>`."""


def _notification_problem(destination: str, block: str) -> str | None:
    kind, _, label = destination.partition(":")
    if kind not in NOTIFICATION_DESTINATIONS or not label:
        kinds = ", ".join(f"'{k}:...'" for k in NOTIFICATION_DESTINATIONS)
        return f"[tenant.notifications] key {destination!r} must be one of {kinds}, e.g. 'slack:#data-alerts'"
    slug, _, name = block.partition("/")
    if not slug or not name or "/" in name:
        return (
            f"[tenant.notifications] {destination!r} = {block!r} must name a Prefect notification block as "
            "'<block-type-slug>/<block-name>', e.g. 'slack-webhook/data-alerts'"
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
    work_pool: str = "default"
    image_python: str = "3.12"
    blocks: BlockNames
    dbt_cloud: DbtCloudSettings = DbtCloudSettings()
    code_storage: CodeStorage | None = None
    runtime: Runtime = Runtime()
    retries: RetrySettings = RetrySettings()
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

    @field_validator("ledger_url")
    @classmethod
    def _durable_ledger(cls, value: str) -> str:
        problem = durable_url_problem(value)
        if problem is not None:
            raise ValueError(f"the ledger must outlive the process that writes it: {problem}")
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
    for key in ("artifact_store_url", "ledger_url"):
        if key in tenant and isinstance(tenant[key], str) and "://" not in tenant[key]:
            tenant[key] = str(_resolve(base, tenant[key]))
    sandbox = tenant.get("sandbox")
    if isinstance(sandbox, dict):
        files = {key: _resolve(base, sandbox[key]) for key in ("jobs_file", "environments_file") if key in sandbox}
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
