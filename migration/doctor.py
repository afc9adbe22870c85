"""Is everything a migration needs ready? One check per part, each failure with a one-line fix.

dbt Cloud (host, token, account), Prefect (API, work pool, a worker polling it), the profile block of every
target (its warehouse answers `select 1`; a Snowflake session has a role, a warehouse and a database; a DuckDB
file that dbt creates on its first run may be missing), the artifact store and the ledger (writable). Nothing is
printed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, SecretStr

from dbt2prefect.errors import Dbt2PrefectError, ProfileError
from dbt2prefect.files import writable_problem
from dbt2prefect.object_store import is_local_url
from dbt2prefect.prefect_gateway import PrefectGateway, gateway_or_connect
from dbt2prefect.profile_fields import SNOWFLAKE_ENV
from dbt2prefect.profiles import load_target_profile, profile_from_local
from dbt2prefect.tenant import TenantSettings
from dbt2prefect.warehouse import SESSION_NAMES, SnowflakeWarehouse, warehouse_from_profile_output
from migration.dbt_cloud.client import DbtCloudClient
from migration.dbt_cloud.errors import (
    DbtCloudApiError,
    DbtCloudAuthError,
    DbtCloudConfigError,
    DbtCloudNotFoundError,
    DbtCloudResponseError,
    DbtCloudRetriesExhaustedError,
)
from migration.dbt_cloud.settings import RetryPolicy, normalize_host

DOCTOR_RETRY = RetryPolicy(max_attempts=2, backoff_base=0.5, deadline=30.0, rate_limit_wait=30.0)
"""A diagnosis answers in seconds: one retry, no long rate-limit wait."""
WORKER_SILENCE = timedelta(seconds=90)
"""A worker whose last poll is older than this does not count (Prefect workers poll every 15 s by default)."""


class DbtCloudFactory(Protocol):
    """Builds a dbt Cloud client of the tenant's account for a diagnosis (host, token and policy given)."""

    def __call__(
        self, host: str, token: SecretStr, token_source: str, *, retry: RetryPolicy, timeout: float, page_size: int
    ) -> DbtCloudClient: ...


@dataclass(frozen=True)
class DoctorServices:
    """How the checks reach the tenant's services (the application layer builds them).

    Attributes:
        dbt_cloud: builds the dbt Cloud client.
        token: the dbt Cloud token and where it came from (raises `DbtCloudConfigError` when there is none).
        store: opens the run-artifact store (raises its setting error when its URL is unusable).
        ledger: opens the cutover ledger (raises its setting error when its URL is unusable or not durable).
        prefect: opens the Prefect gateway (asked for only when PREFECT_API_URL is set).
    """

    dbt_cloud: DbtCloudFactory
    token: Callable[[], tuple[SecretStr, str]]
    store: Callable[[], object]
    ledger: Callable[[], object]
    prefect: Callable[[], PrefectGateway]


class CheckStatus(StrEnum):
    OK = "ok"
    FAIL = "fail"
    SKIPPED = "skipped"


class Check(BaseModel):
    """One check: what was looked at, what was found, and on failure the one step that fixes it."""

    model_config = ConfigDict(frozen=True)

    name: str
    status: CheckStatus
    detail: str
    fix: str = ""


class DoctorReport(BaseModel):
    """Every check of one tenant, in the order a migration needs them."""

    model_config = ConfigDict(frozen=True)

    tenant: str
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.status is not CheckStatus.FAIL for c in self.checks)


def _ok(name: str, detail: str) -> Check:
    return Check(name=name, status=CheckStatus.OK, detail=detail)


def _fail(name: str, detail: str, fix: str) -> Check:
    return Check(name=name, status=CheckStatus.FAIL, detail=detail, fix=fix)


def _skipped(name: str, detail: str) -> Check:
    return Check(name=name, status=CheckStatus.SKIPPED, detail=detail)


def diagnose(tenant: TenantSettings, services: DoctorServices) -> DoctorReport:
    """Run every check against the tenant's dbt Cloud account, Prefect API, warehouses and stores."""
    from prefect.settings import get_current_settings

    checks = dbt_cloud_checks(tenant, services)
    # Without an API URL no client is opened: it would start a temporary server of its own.
    prefect = services.prefect() if get_current_settings().api.url else None
    checks += prefect_checks(tenant, prefect=prefect)
    api_ok = next(c for c in checks if c.name == "Prefect API").status is CheckStatus.OK
    for target in tenant.targets:
        checks.append(
            profile_check(tenant, target) if api_ok else _skipped(f"profile {target}", "needs the Prefect API")
        )
    for destination in sorted(tenant.notifications):
        name = f"notification {destination}"
        checks.append(
            notification_check(tenant, destination, prefect) if api_ok else _skipped(name, "needs the Prefect API")
        )
    checks += storage_checks(tenant, services)
    return DoctorReport(tenant=tenant.name, checks=checks)


def notification_check(tenant: TenantSettings, destination: str, prefect: PrefectGateway | None = None) -> Check:
    """The notification block `[tenant.notifications]` names for `destination` exists and can notify."""
    from migration.notification_automations import block_problem

    reference = tenant.notifications[destination]
    with gateway_or_connect(prefect) as gateway:
        _, problem = block_problem(gateway, reference)
    name = f"notification {destination}"
    if problem is None:
        return _ok(name, f"block {reference} can send")
    detail, _, fix = problem.partition("; ")
    return _fail(name, detail, fix)


def dbt_cloud_checks(tenant: TenantSettings, services: DoctorServices) -> list[Check]:
    """Host, token and account, from one request that reads the account's first job."""
    settings = tenant.dbt_cloud
    host_fix = "set [tenant.dbt_cloud] host to your dbt Cloud access URL (Account settings > Access URLs)"
    try:
        host = normalize_host(settings.host)
    except DbtCloudConfigError as exc:
        return [
            _fail("dbt Cloud host", str(exc), host_fix),
            _skipped("dbt Cloud token", "needs a usable host"),
            _skipped("dbt Cloud account", "needs a usable host"),
        ]
    token_fix = (
        f"export {settings.token_env}=<service token>, or store it in the Prefect Secret block "
        f"{tenant.blocks.dbt_cloud_token_block!r}"
    )
    try:
        token, source = services.token()
    except DbtCloudConfigError as exc:
        return [
            _skipped("dbt Cloud host", f"{host}: needs a token to ask"),
            _fail("dbt Cloud token", str(exc), token_fix),
            _skipped("dbt Cloud account", "needs a token"),
        ]
    account = f"account {settings.account_id}" + (f", project {settings.project_id}" if settings.project_id else "")
    try:
        with services.dbt_cloud(host, token, source, retry=DOCTOR_RETRY, timeout=10.0, page_size=1) as client:
            first = next(client.iter_job_dicts(project_id=settings.project_id), None)
    except (DbtCloudRetriesExhaustedError, DbtCloudResponseError) as exc:
        return [
            _fail("dbt Cloud host", str(exc), host_fix),
            _skipped("dbt Cloud token", "needs the host to answer"),
            _skipped("dbt Cloud account", "needs the host to answer"),
        ]
    except DbtCloudAuthError as exc:
        return [
            _ok("dbt Cloud host", f"{host} answers"),
            _fail("dbt Cloud token", f"the token from {source} was refused: {exc}", token_fix),
            _skipped("dbt Cloud account", "needs an accepted token"),
        ]
    except DbtCloudNotFoundError as exc:
        return [
            _ok("dbt Cloud host", f"{host} answers"),
            _ok("dbt Cloud token", f"from {source}, accepted"),
            _fail(
                "dbt Cloud account",
                f"{account} not found or not visible to this token: {exc}",
                "set [tenant.dbt_cloud] account_id (the number after /accounts/ in dbt Cloud URLs)",
            ),
        ]
    except DbtCloudApiError as exc:
        return [
            _ok("dbt Cloud host", f"{host} answers"),
            _ok("dbt Cloud token", f"from {source}"),
            _fail("dbt Cloud account", f"{account}: {exc}", "check [tenant.dbt_cloud] account_id and project_id"),
        ]
    jobs = "its jobs are readable" if first is not None else "readable, but it has no jobs"
    return [
        _ok("dbt Cloud host", f"{host} answers"),
        _ok("dbt Cloud token", f"from {source}, accepted"),
        _ok("dbt Cloud account", f"{account}: {jobs}"),
    ]


def prefect_checks(
    tenant: TenantSettings, now: datetime | None = None, prefect: PrefectGateway | None = None
) -> list[Check]:
    """The API answers, the tenant's work pool exists with the tenant's pool type, a worker polls it."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        # Without a URL, Prefect clients start a temporary server of their own: nothing would be checked.
        return [
            _fail(
                "Prefect API",
                "PREFECT_API_URL is not set",
                "set PREFECT_API_URL (a server's /api URL) or run `prefect cloud login`",
            ),
            _skipped("work pool", "needs the Prefect API"),
            _skipped("worker", "needs the Prefect API"),
        ]
    with gateway_or_connect(prefect) as gateway:
        return _prefect_checks(tenant, str(url), now or datetime.now(UTC), gateway)


def _prefect_checks(tenant: TenantSettings, url: str, now: datetime, prefect: PrefectGateway) -> list[Check]:
    pool_name, pool_type = tenant.work_pool, tenant.runtime.pool_type
    error = prefect.healthcheck()
    if error is not None:
        return [
            _fail(
                "Prefect API",
                f"{url} does not answer: {type(error).__name__}",
                "start the server or fix PREFECT_API_URL",
            ),
            _skipped("work pool", "needs the Prefect API"),
            _skipped("worker", "needs the Prefect API"),
        ]
    checks = [_ok("Prefect API", f"{url} answers")]
    pool = prefect.read_work_pool(pool_name)
    if pool is None:
        return [
            *checks,
            _fail(
                "work pool",
                f"work pool {pool_name!r} does not exist",
                f"run `dbt2prefect apply --create-pool`, or `prefect work-pool create {pool_name} --type {pool_type}`",
            ),
            _skipped("worker", "needs the work pool"),
        ]
    if pool.type != pool_type:
        checks.append(
            _fail(
                "work pool",
                f"work pool {pool_name!r} is of type {pool.type!r}, the tenant's runtime.pool_type is {pool_type!r}",
                "set [tenant.runtime] pool_type to the pool's type, or set work_pool to a pool of that type",
            )
        )
    else:
        checks.append(_ok("work pool", f"{pool_name!r} ({pool.type})" + (", paused" if pool.is_paused else "")))
    if pool.type.startswith("prefect:"):
        return [*checks, _ok("worker", f"{pool.type} pool: Prefect Cloud runs its flows, no worker needed")]
    workers = prefect.read_workers(pool_name)
    polled = [w for w in workers if w.last_heartbeat_time is not None]
    latest = max(polled, key=lambda w: w.last_heartbeat_time or now, default=None)
    if latest is None or latest.last_heartbeat_time is None or now - latest.last_heartbeat_time > WORKER_SILENCE:
        seen = (
            "no worker has ever polled it"
            if latest is None or latest.last_heartbeat_time is None
            else f"the last poll was {latest.last_heartbeat_time:%Y-%m-%d %H:%M:%S} UTC, by {latest.name}"
        )
        return [
            *checks,
            _fail(
                "worker",
                f"no worker polls {pool_name!r} ({seen})",
                f"start one: `prefect worker start --pool {pool_name}`",
            ),
        ]
    age = int((now - latest.last_heartbeat_time).total_seconds())
    recent = sum(1 for w in polled if w.last_heartbeat_time and now - w.last_heartbeat_time <= WORKER_SILENCE)
    return [*checks, _ok("worker", f"{recent} polling {pool_name!r}; {latest.name} {max(age, 0)} s ago")]


def session_problem(context: Mapping[str, str | None]) -> str | None:
    """What a Snowflake session lacks to run dbt (its `current_role()`, `current_warehouse()` or
    `current_database()` is NULL), else None."""
    missing = [name for name, value in context.items() if value is None]
    if not missing:
        return None
    return "the session has no " + ", ".join(f"current_{name}()" for name in missing) + " (NULL)"


def profile_check(tenant: TenantSettings, target: str, *, session: Sequence[str] = SESSION_NAMES) -> Check:
    """The target's profile block exists and its warehouse answers `select 1`; on Snowflake, the session also has
    a role, a warehouse and a database (`session`: which of them to ask for).

    A target without a block that the local profiles.yml holds (laptops, the sandbox's `local`) is skipped. A
    DuckDB block whose database file does not exist yet passes when dbt can create it there (its folder and the
    databases it attaches exist), as on a fresh sandbox before any run of the target.
    """
    name, check = tenant.block_name(target), f"profile {target}"
    try:
        block = load_target_profile(name)
    except ProfileError as exc:
        if _in_local_profiles(tenant, target):
            return _skipped(check, f"no block {name!r}; runs with profiles_strategy='local' only")
        return _fail(check, str(exc), f"dbt2prefect blocks register --target {target}")
    fix = f"fix the connection and re-register: dbt2prefect blocks register --target {target}"
    try:
        output = block.output(name)
        unbuilt = _duckdb_file_to_be_built(output)
        if unbuilt is not None:
            return _ok(check, f"block {name!r} (duckdb): {unbuilt} does not exist yet; dbt creates it on the first run")
        with warehouse_from_profile_output(output) as warehouse:
            warehouse.ping()
            if not isinstance(warehouse, SnowflakeWarehouse) or not session:
                return _ok(check, f"block {name!r} ({block.adapter}) answers select 1")
            context = warehouse.session_context(session)
    except Dbt2PrefectError as exc:
        return _fail(check, f"block {name!r} ({block.adapter}): {exc}", fix)
    problem = session_problem(context)
    if problem is not None:
        variables = " / ".join(SNOWFLAKE_ENV[n] for n in context if context[n] is None)
        return _fail(
            check,
            f"block {name!r} (snowflake) answers select 1, but {problem}: dbt could not run",
            f"export {variables} (granted to the user) and re-register: dbt2prefect blocks register --target {target}",
        )
    found = ", ".join(f"{n} {v}" for n, v in context.items())
    return _ok(check, f"block {name!r} (snowflake) answers select 1 as {found}")


def _duckdb_file_to_be_built(output: Mapping[str, Any]) -> Path | None:
    """The database file of a DuckDB profile output that dbt will create on the target's first run: it does not
    exist yet, its folder does, and so does every database it attaches. None for anything else (which is then
    connected to)."""
    if str(output.get("type", "")).lower() != "duckdb" or output.get("path") in (None, "", ":memory:"):
        return None
    file = Path(str(output["path"]))
    attached = [Path(str(item.get("path"))) for item in output.get("attach") or () if isinstance(item, Mapping)]
    if file.exists() or not file.parent.is_dir() or not all(path.exists() for path in attached):
        return None
    return file


def _in_local_profiles(tenant: TenantSettings, target: str) -> bool:
    if tenant.local_profiles_dir is None:
        return False
    try:
        profile_from_local(tenant.local_profiles_dir, tenant.profile_name, target)
    except ProfileError:
        return False
    return True


def storage_checks(tenant: TenantSettings, services: DoctorServices) -> list[Check]:
    """The artifact store, the ledger and the parity reports accept writes under the tenant's folder, and are
    object storage when the deployment's runs are containers (any pool but `process`)."""
    stores: list[tuple[str, str, str, Callable[[], object]]] = [
        ("artifact store", tenant.artifact_store_url, "artifact_store_url", services.store),
        ("ledger", tenant.ledger_url, "ledger_url", services.ledger),
        ("parity reports", tenant.parity_report_root, "parity_report_url", lambda: None),
    ]
    checks = []
    pool_type = tenant.runtime.pool_type
    for name, url, setting, open_store in stores:
        fix = f"set `{setting}` in the tenant settings to a folder or fsspec URL this user can write"
        if pool_type != "process" and is_local_url(url):
            checks.append(
                _fail(
                    name,
                    f"{url} is a local folder, but runs on the {pool_type} pool {tenant.work_pool!r} are containers "
                    "whose folders vanish with them",
                    f"set `{setting}` to object storage the runs, operators and CI all reach (e.g. s3://<bucket>/...)",
                )
            )
            continue
        try:
            open_store()  # each store's own checks first: a usable URL, a durable ledger
        except Dbt2PrefectError as exc:
            checks.append(_fail(name, str(exc), fix))
            continue
        target = url if setting == "parity_report_url" else f"{url.rstrip('/')}/{tenant.name}"
        problem = writable_problem(target)
        checks.append(_fail(name, problem, fix) if problem else _ok(name, f"{url} is writable"))
    return checks
