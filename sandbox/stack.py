"""The sandbox stack on loopback: raw data, the sandbox dbt Cloud API, a real Prefect server, profile blocks.

`sandbox_stack()` starts everything and stops what it started; the pieces are public too, so the demo can show
each one as a step. All state lives in one work folder (default `.dbt2prefect/sandbox/`):

    warehouse/   raw.duckdb and one DuckDB file per target (the stand-in for Snowflake: both sides reach it)
    prefect/     PREFECT_HOME of the Prefect server (SQLite database, server.log)
    s3/          the log of the S3 API on loopback; the bucket holds the artifact store and the ledger
    code/        a snapshot of this checkout with the stack's tenant settings in it (`tenants/<tenant>.toml`),
                 pushed to code.git/, the stand-in for the team's GitHub repository (see `sandbox.code_remote`)
    worker/      the folder the process worker runs in (worker.log next to it): its flow runs clone code.git here
    dbt_cloud/   artifacts of the sandbox dbt Cloud runs
    runs/        the operator's private run folders; parity/ parity reports

The worker shares no folder with the operator, as a managed pool's throw-away container shares none: it gets its
code by cloning, reads and writes artifacts and ledger records in object storage, and keeps its private run
folders under its own folder. Only the warehouse is shared, as Snowflake is a service both sides reach.

While the stack is active, this process's Prefect client talks to the stack's server and the environment holds
what the toolkit reads (tenant file, warehouse folder, S3 address, dbt Cloud token), so flows, `apply` and
`parity` run here exactly as they would against a remote Prefect API, object storage and dbt Cloud.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from dbt2prefect.compat import Target, applies
from dbt2prefect.errors import ConfigError
from dbt2prefect.run_env import environment
from dbt2prefect.tenant import BUNDLED_RAW_LOADERS, REPO_ROOT, TenantSettings, load_tenant, settings_path
from sandbox.code_remote import CodeRemote, create_code_remote
from sandbox.dbt_cloud import SandboxDbtCloud
from sandbox.errors import PortInUseError, ServerStartError, WorkdirError
from sandbox.notification_sink import NotificationSink, register_notification_blocks, sandbox_notification_blocks
from sandbox.process import ChildProcess, spawn
from sandbox.s3_api import BUCKET, S3Api
from sandbox.warehouse import ENV_VAR as WAREHOUSE_ENV_VAR
from sandbox.warehouse import RAW_DB, database_path, duckdb_output
from sandbox.worker import ProcessWorker

DEFAULT_ROOT = REPO_ROOT / ".dbt2prefect" / "sandbox"
"""Work folder of `dbt2prefect sandbox up`."""

MARKER = ".dbt2prefect-sandbox"
"""File that marks a folder as a sandbox work folder, so `fresh=True` only ever deletes our own folders."""

BLOCK_TARGETS: tuple[str, ...] = ("dev", "prod", "parity")
"""Targets whose profile blocks the sandbox registers (`local` reads the project's profiles.yml)."""

RUNS_ENV_VAR = "DBT2PREFECT_RUNS_DIR"
TENANT_ENV_VAR = "DBT2PREFECT_TENANT_FILE"
WORK_POOL = "sandbox-process"
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
"""The sandbox's work pool: a process pool served by the stack's own worker."""


def sandbox_deployment_settings(pool: str = WORK_POOL, code_storage: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Tenant settings of a sandbox deployment: a process pool whose workers run with the packages of this
    environment (`preinstalled`: a managed pool pip-installs the pinned packages at run start instead).

    Args:
        code_storage: where the workers get the code (default: this checkout in place, a local folder); the
            sandbox stack passes its code remote's (`CodeRemote.code_storage`), which workers clone as production's
            clone the tenant's repository.
    """
    return {
        "work_pool": pool,
        "code_storage": dict(code_storage) if code_storage is not None else {"directory": str(REPO_ROOT)},
        "runtime": {"pool_type": "process", "dependencies": "preinstalled"},
    }


def on_process_pool(tenant: TenantSettings, pool: str = WORK_POOL, **update: Any) -> TenantSettings:
    """The tenant with `sandbox_deployment_settings` (and `update`) applied, validated.

    A tenant whose code storage clones a repository on this machine (`file://`, a sandbox code remote) keeps it;
    any other's deployment runs this checkout in place.
    """
    storage, kept = tenant.code_storage, None
    if storage is not None and storage.repository is not None and storage.repository.startswith("file://"):
        kept = {"repository": storage.repository, "branch": storage.branch}
    data = {**tenant.model_dump(), **sandbox_deployment_settings(pool, kept), **update}
    return TenantSettings.model_validate(data)


@dataclass(frozen=True)
class StackPaths:
    """Where the stack keeps its state, all under `root`."""

    root: Path

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse"

    @property
    def prefect_home(self) -> Path:
        return self.root / "prefect"

    @property
    def dbt_cloud_artifacts(self) -> Path:
        return self.root / "dbt_cloud"

    @property
    def worker(self) -> Path:
        return self.root / "worker"

    @property
    def tenant_dir(self) -> Path:
        """The tenant settings of a stack without a code remote (see `write_tenant_file`)."""
        return self.root / "tenant"

    @property
    def code(self) -> Path:
        """The operator's checkout of the code remote (see `sandbox.code_remote`)."""
        return self.root / "code"

    @property
    def code_remote(self) -> Path:
        """The bare repository the worker's flow runs clone."""
        return self.root / "code.git"

    @property
    def s3(self) -> Path:
        """The S3 API's folder (its log); the bucket itself lives in the API's memory."""
        return self.root / "s3"

    @property
    def artifacts(self) -> Path:
        """The artifact store of a stack without object storage (see `write_tenant_file`)."""
        return self.root / "artifacts"

    @property
    def ledger(self) -> Path:
        """The ledger of a stack without object storage (see `write_tenant_file`)."""
        return self.root / "ledger"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def reports(self) -> Path:
        return self.root / "parity"

    @property
    def notifications(self) -> Path:
        """What the sandbox's notification blocks sent, one JSON line each."""
        return self.root / "notifications.jsonl"

    @property
    def inventory(self) -> Path:
        return self.root / "inventory.json"


def _owned(root: Path) -> bool:
    """True when `root` holds the sandbox's marker file (a regular file, not a link to one)."""
    marker = root / MARKER
    return marker.is_file() and not marker.is_symlink()


def unclaimed(root: Path) -> bool:
    """True when `root` does not exist or is an empty folder: a folder the sandbox may make its own."""
    root = Path(root).expanduser().resolve()
    return not root.exists() or (root.is_dir() and not any(root.iterdir()))


def prepare_workdir(root: Path, *, fresh: bool) -> StackPaths:
    """Make `root` the sandbox's work folder (or, with `fresh`, empty it first), and mark it as ours.

    Ownership is decided before anything is written: only a new folder, an empty one, or one the sandbox already
    marked may be used; `fresh` empties only a marked folder.

    Raises:
        WorkdirError: the folder is a file, holds files the sandbox did not make, or cannot be created.
    """
    root = Path(root).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise WorkdirError(f"work folder {root} is a file; pass a folder as --workdir")
    ours = root.is_dir() and _owned(root)
    if not ours and not unclaimed(root):
        raise WorkdirError(
            f"work folder {root} is not empty and was not made by dbt2prefect; "
            "pass an empty or new folder as --workdir (the sandbox never writes into or empties a folder of yours)"
        )
    if fresh and ours:
        shutil.rmtree(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        (root / MARKER).write_text("made by dbt2prefect sandbox; safe to delete\n", encoding="utf-8")
    except OSError as exc:
        raise WorkdirError(
            f"cannot create work folder {root}: {exc.strerror or exc}; pass a writable --workdir"
        ) from None
    return StackPaths(root)


def release_workdir(paths: StackPaths, *, created: Path | None) -> None:
    """Undo `prepare_workdir` for a start that failed: the folder is left as the user gave it, not the sandbox's.

    Args:
        created: the highest folder `prepare_workdir` created (the work folder or a parent of it), removed with
            everything in it; None when the work folder existed, empty: it is emptied again.
    """
    root = paths.root
    if not _owned(root):
        return
    if created is not None:
        shutil.rmtree(created, ignore_errors=True)
        return
    for child in list(root.iterdir()):
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _first_missing(folder: Path) -> Path | None:
    """The highest of `folder` and its parents that does not exist yet (what mkdir(parents=True) would create)."""
    missing = None
    for path in (folder, *folder.parents):
        if path.exists():
            break
        missing = path
    return missing


def load_raw_data(tenant: TenantSettings, warehouse: Path) -> Any:
    """Call the tenant's raw-data loader (`[tenant.sandbox] raw_loader`) on `warehouse`; returns what it returns.

    The loader is one of `BUNDLED_RAW_LOADERS` or a function of a Python file in the tenant's dbt project folder
    (the settings loader refuses anything else): a settings file never names an importable module.

    Raises:
        ConfigError: the loader cannot be loaded.
    """
    loader = tenant.sandbox.raw_loader
    if loader is None:
        return None
    source, _, function = loader.rpartition(":")
    try:
        if loader in BUNDLED_RAW_LOADERS:
            module = importlib.import_module(source)
        else:
            spec = importlib.util.spec_from_file_location(f"_dbt2prefect_raw_loader_{tenant.name}", source)
            if spec is None or spec.loader is None:
                raise ImportError(f"{source} is not a Python file")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        target = getattr(module, function)
    except (ImportError, AttributeError, OSError, SyntaxError) as exc:
        raise ConfigError(
            f"tenant settings {tenant.settings_file}: [tenant.sandbox] raw_loader {loader!r} cannot be loaded "
            f"({type(exc).__name__}: {exc}); name a function of a Python file in the tenant's dbt project folder "
            "as '<file>.py:<function>'"
        ) from None
    return target(warehouse)


def ensure_raw_data(paths: StackPaths, tenant: TenantSettings) -> bool:
    """Load the raw source data unless `warehouse/raw.duckdb` exists. Returns True when it loaded.

    A tenant without a raw-data loader has its raw data as seeds, which its jobs load: nothing to do.
    """
    if tenant.sandbox.raw_loader is None or database_path(RAW_DB, paths.warehouse).exists():
        return False
    load_raw_data(tenant, paths.warehouse)
    return True


# ------------------------------------------------------------------------------------------------ ports


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS reports free right now (the server binds it moments later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def check_port_free(port: int, what: str, host: str = "127.0.0.1") -> None:
    """Raise PortInUseError naming the option when `port` is taken on `host`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            raise PortInUseError(f"port {port} on {host} is in use; pass another {what} (0 picks a free one)") from None


# ------------------------------------------------------------------------------------------------ Prefect


def _server_environment(home: Path, api_url: str) -> dict[str, str]:
    # The server must not inherit a client-side API URL, Cloud key or profile from the caller's shell.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PREFECT_API_", "PREFECT_SERVER_DATABASE_", "PREFECT_PROFILE", "PREFECT_UI_"))
    }
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
            # The UI calls this API, not 127.0.0.1:4200 (another local server's data, or nothing).
            "PREFECT_UI_API_URL": api_url,
            # Links in notifications (the `ui_url` template filter) point at this server's UI.
            "PREFECT_UI_URL": api_url.removesuffix("/api"),
            # An activated schedule gets its runs within seconds, as a person watching the rehearsal expects.
            "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
        }
    )
    return env


class PrefectServer(ChildProcess):
    """A `prefect server start` subprocess on loopback with its own PREFECT_HOME (SQLite database inside).

    Use `PrefectServer.start(...)`, then `wait_ready()`; `stop()` ends the process (also as a context manager).
    """

    def __init__(self, process: subprocess.Popen[bytes], host: str, port: int, log_path: Path) -> None:
        super().__init__(process, log_path)
        self.host = host
        self.port = port

    def __repr__(self) -> str:
        return f"PrefectServer(url={self.url!r}, pid={self.pid})"

    @property
    def url(self) -> str:
        """The UI address."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """The value for PREFECT_API_URL."""
        return f"{self.url}/api"

    @classmethod
    def start(cls, home: Path, *, port: int = 0, host: str = "127.0.0.1") -> PrefectServer:
        """Start the server process without waiting for it (call `wait_ready`).

        Raises:
            PortInUseError: `port` is taken.
            ServerStartError: the process could not be started.
        """
        if port:
            check_port_free(port, "--prefect-port", host)
        chosen = port or free_port(host)
        home.mkdir(parents=True, exist_ok=True)
        log_path = home / "server.log"
        command = [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(chosen)]
        env = _server_environment(home, f"http://{host}:{chosen}/api")
        process = spawn(command, log_path=log_path, env=env, what="prefect server start")
        return cls(process, host, chosen, log_path)

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until GET /api/health answers true.

        Raises:
            ServerStartError: the process exited or the API did not answer within `timeout` (the server log's
                tail is in the message).
        """

        def healthy(client: httpx.Client) -> bool:
            response = client.get(f"{self.api_url}/health")
            return response.status_code == 200 and response.json() is True

        self.wait_until(healthy, timeout=timeout, what=f"the Prefect server on {self.url}")


# ------------------------------------------------------------------------------------------------ tenant


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key)


def _toml_tables(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    lines: list[str] = []
    scalars = {k: v for k, v in data.items() if not isinstance(v, Mapping)}
    tables = {k: v for k, v in data.items() if isinstance(v, Mapping)}
    if prefix:
        lines.append(f"[{prefix}]")
    lines += [f"{_toml_key(key)} = {_toml_value(value)}" for key, value in scalars.items()]
    for key, table in tables.items():
        if lines:
            lines.append("")
        lines += _toml_tables(table, f"{prefix}.{key}" if prefix else key)
    return lines


def derive_tenant_file(
    destination: Path,
    source: Path | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    header: Sequence[str] = (),
    checkout: Path | None = None,
) -> Path:
    """Write tenant settings derived from `source` (default: the repository's tenant) to `destination`.

    Paths become absolute (the dbt project stays where it is), then `overrides` replace top-level settings
    (a `dbt_cloud` or `sandbox` mapping is merged into the source's). The tenant's parity settings file is copied next to it.

    Args:
        checkout: a snapshot of this repository (`sandbox.code_remote`) that `destination` is in: paths inside
            this repository become paths relative to `destination`, to the same files in the snapshot, so a clone
            of it reads its own copies.
    """
    source_file = Path(source) if source is not None else settings_path()
    original = load_tenant(source_file)

    def place(path: Path) -> str:
        if checkout is not None and path.is_relative_to(REPO_ROOT):
            return Path(os.path.relpath(checkout / path.relative_to(REPO_ROOT), destination.parent)).as_posix()
        return str(path)

    raw = tomllib.loads(source_file.read_text(encoding="utf-8"))
    tenant = dict(raw.get("tenant", raw))
    tenant["project_dir"] = place(original.project_dir)
    if original.local_profiles_dir is not None:
        tenant["local_profiles_dir"] = place(original.local_profiles_dir)
    if "sandbox" in tenant:
        sandbox = original.sandbox.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
        for key in ("jobs_file", "environments_file"):
            if key in sandbox:
                sandbox[key] = place(Path(sandbox[key]))
        loader = sandbox.get("raw_loader")
        if isinstance(loader, str) and loader not in BUNDLED_RAW_LOADERS:
            module, _, function = loader.rpartition(":")
            sandbox["raw_loader"] = f"{place(Path(module))}:{function}"
        tenant["sandbox"] = sandbox
    changes = dict(overrides or {})
    tenant["dbt_cloud"] = {**(tenant.get("dbt_cloud") or {}), **changes.pop("dbt_cloud", {})}
    if "sandbox" in changes:
        tenant["sandbox"] = {**(tenant.get("sandbox") or {}), **changes.pop("sandbox")}
    tenant.update(changes)
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_text("\n".join([*header, *_toml_tables({"tenant": tenant})]) + "\n", encoding="utf-8")
    parity = source_file.with_name(f"{source_file.stem}.parity.toml")
    copy = destination.with_name(f"{destination.stem}.parity.toml")
    if parity.exists() and parity.resolve() != copy.resolve():
        shutil.copy2(parity, copy)
    return destination


def write_tenant_file(
    paths: StackPaths,
    dbt_cloud: SandboxDbtCloud,
    *,
    source: Path | None = None,
    acknowledged: Sequence[str] = (),
    pool: str = WORK_POOL,
    bucket: str | None = None,
    remote: CodeRemote | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Path:
    """Write the tenant settings for this stack: the source tenant's settings with sandbox addresses.

    dbt Cloud points at the sandbox server, the deployment runs on the process pool `pool`
    (`sandbox_deployment_settings`), notifications go through blocks that post to the sandbox's sink
    (`sandbox_notification_blocks`), and `acknowledged` findings are added (see `derive_tenant_file`).

    Args:
        bucket: the object storage (`s3://<bucket>`) that holds the artifact store (`artifacts/`) and the ledger
            (`ledger/`), as production's do; None: folders of the work folder (`paths.artifacts`, `paths.ledger`).
        remote: the code remote the deployment clones: the settings are written into its checkout (where the
            source file is in this repository, else under `tenants/`) and pushed, so a flow run reads them from
            its clone; None: under `paths.tenant_dir`, the deployment running this checkout in place.
        settings: further top-level settings that replace the source's (e.g. the demo's `shadow` table).
    """
    source_file = Path(source) if source is not None else settings_path()
    original = load_tenant(source_file)
    store = {"artifact_store_url": str(paths.artifacts), "ledger_url": str(paths.ledger)}
    if bucket is not None:
        store = {"artifact_store_url": f"{bucket}/artifacts", "ledger_url": f"{bucket}/ledger"}
    overrides = {
        **store,
        "acknowledged_findings": sorted({*original.acknowledged_findings, *acknowledged}),
        "dbt_cloud": {"host": dbt_cloud.url, "account_id": dbt_cloud.account_id},
        "notifications": sandbox_notification_blocks(original),
        # `blocks register --target T` on this tenant saves T's block on the stack's DuckDB file, as the stack does.
        "sandbox": {"warehouse": str(paths.warehouse)},
        **sandbox_deployment_settings(pool, None if remote is None else remote.code_storage()),
        **(settings or {}),
    }
    header = [
        f"# Written by the dbt2prefect sandbox from {source_file}: dbt Cloud is the sandbox server on loopback.",
        "# Nothing secret belongs here: the token is in the environment variable named by token_env.",
    ]
    if remote is None:
        return derive_tenant_file(paths.tenant_dir / source_file.name, source_file, overrides=overrides, header=header)
    inside = source_file.resolve().is_relative_to(REPO_ROOT)
    relative = source_file.resolve().relative_to(REPO_ROOT) if inside else Path("tenants") / source_file.name
    written = derive_tenant_file(
        remote.checkout / relative, source_file, overrides=overrides, header=header, checkout=remote.checkout
    )
    remote.publish(f"Sandbox tenant settings {relative.as_posix()}")
    return written


def register_profile_blocks(
    tenant: TenantSettings, warehouse: Path, targets: Sequence[str] = BLOCK_TARGETS
) -> list[str]:
    """Save one DuckDB profile block per target in the active Prefect API; returns the block names."""
    from dbt2prefect.profiles import block_from_env

    names = []
    for target in targets:
        output = duckdb_output(target, warehouse, raw_catalog=tenant.sandbox.raw_catalog)
        block = block_from_env("duckdb", {}, output)
        name = tenant.block_name(target)
        block.save(name, overwrite=True)
        names.append(name)
    return names


def save_secret_blocks(plan: Any) -> list[str]:
    """Save every Secret block the plan's jobs read (`secret_env_vars`) with a stand-in value; returns their names.

    dbt Cloud masks secrets, so a person copies each value into its block (the plan's `env_var_secret`
    findings); the sandbox has no real values and plays that person.
    """
    from dbt2prefect.run_env import save_secret

    names = sorted({b for job in plan.jobs for b in ((job.parameters or {}).get("secret_env_vars") or {}).values()})
    for name in names:
        save_secret(name, f"sandbox stand-in for {name}")
    return names


# ------------------------------------------------------------------------------------------------ activation


@contextlib.contextmanager
def prefect_api(url: str) -> Iterator[None]:
    """Point this process's Prefect client at `url` for the block (Prefect's settings, not os.environ).

    Like `prefect_test_harness`, the settings also become the process-global settings context: Prefect's log and
    event workers and prefect-dbt's per-node threads run outside this context's `contextvars` and would otherwise
    send flow-run logs to no server (or start an ephemeral one). Logs are drained before the block ends, so they
    reach the server before it is stopped.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with contextlib.ExitStack() as stack:
        stack.enter_context(temporary_settings(updates={PREFECT_API_URL: url}))
        stack.enter_context(_global_settings_context())
        try:
            yield
        finally:
            _drain_prefect_workers()


GLOBAL_SETTINGS_WRITTEN_FOR = {"prefect": "3.9."}


def _global_settings_context() -> contextlib.AbstractContextManager[None]:
    """The current settings as the process-global settings context, as `prefect_test_harness` sets them.

    `prefect.context._temporary_global_settings_context` is private: it is used on the Prefect versions it was
    written for only; elsewhere the block changes nothing (threads outside this context then see the settings
    Prefect read at import).
    """
    import prefect.context

    targets = [Target(prefect.context, "_temporary_global_settings_context")]
    if not applies("sandbox global settings context", GLOBAL_SETTINGS_WRITTEN_FOR, lambda: targets):
        return contextlib.nullcontext()
    manager: contextlib.AbstractContextManager[None] = prefect.context._temporary_global_settings_context(
        prefect.context.get_settings_context()
    )
    return manager


def _drain_prefect_workers() -> None:
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    with contextlib.suppress(RuntimeError):  # a worker that never started has nothing to drain
        APILogWorker.drain_all(timeout=10)
    with contextlib.suppress(RuntimeError):
        EventsWorker.drain_all(timeout=10)


@dataclass(frozen=True)
class SandboxStack:
    """A running stack: its folders, servers, tenant settings and registered blocks."""

    paths: StackPaths
    dbt_cloud: SandboxDbtCloud
    prefect: PrefectServer
    tenant_file: Path
    blocks: tuple[str, ...]
    data_generated: bool
    worker: ProcessWorker | None = None
    notifications: NotificationSink | None = None
    """Where the tenant's notification blocks post (see `sandbox.notification_sink`)."""
    s3: S3Api | None = None
    """The object storage holding the artifact store and the ledger (None: folders of the work folder)."""
    remote: CodeRemote | None = None
    """The repository the deployment's runs clone (None: they run this checkout in place)."""

    @property
    def tenant(self) -> TenantSettings:
        return load_tenant(self.tenant_file)

    @property
    def token_env(self) -> str:
        """Name of the environment variable that carries the dbt Cloud token."""
        return self.tenant.dbt_cloud.token_env

    def environment(self) -> dict[str, str]:
        """Variables a shell needs to use this stack, apart from the dbt Cloud token (see `token_env`)."""
        return {
            "PREFECT_API_URL": self.prefect.api_url,
            TENANT_ENV_VAR: str(self.tenant_file),
            WAREHOUSE_ENV_VAR: str(self.paths.warehouse),
            RUNS_ENV_VAR: str(self.paths.runs),
            **(self.s3.environment() if self.s3 is not None else {}),
        }

    def worker_environment(self) -> dict[str, str]:
        """What the worker's host has of this stack: the warehouse (Snowflake's stand-in, which both sides reach)
        and the object storage's address. Not the operator's tenant file or run folders: its flow runs read the
        tenant file from their clone (a job variable) and keep their run folders under the worker's folder."""
        return {
            WAREHOUSE_ENV_VAR: str(self.paths.warehouse),
            **(self.s3.environment() if self.s3 is not None else {}),
        }

    def start_worker(self) -> ProcessWorker:
        """Start a process worker on the stack's pool, in its own folder, with `worker_environment`.

        Raises:
            ServerStartError: the worker did not start or register.
        """
        return ProcessWorker.start(
            pool=self.tenant.work_pool,
            api_url=self.prefect.api_url,
            folder=self.paths.worker,
            env=self.worker_environment(),
        )

    @contextlib.contextmanager
    def activated(self) -> Iterator[SandboxStack]:
        """Make this process use the stack: Prefect client, tenant file, warehouse, dbt Cloud token."""
        env = {k: v for k, v in self.environment().items() if k != "PREFECT_API_URL"}
        env[self.token_env] = self.dbt_cloud.token
        with environment(env), prefect_api(self.prefect.api_url):
            yield self


def start_dbt_cloud(
    paths: StackPaths, tenant: TenantSettings, port: int = 0, token: str | None = None
) -> SandboxDbtCloud:
    """Start the sandbox dbt Cloud API on loopback with the tenant's jobs, running them on the stack's warehouse.

    `token` is the one token the server accepts (default: a new random one).

    Raises:
        PortInUseError: `port` is taken.
        ServerStartError: the server did not start.
    """
    if port:
        check_port_free(port, "--dbt-cloud-port")
    paths.dbt_cloud_artifacts.mkdir(parents=True, exist_ok=True)
    paths.warehouse.mkdir(parents=True, exist_ok=True)  # a tenant without a raw-data loader starts with no files
    try:
        return SandboxDbtCloud.start(
            tenant.sandbox.jobs_file,
            environments_file=tenant.sandbox.environments_file,
            raw_catalog=tenant.sandbox.raw_catalog,
            port=port,
            project_dir=tenant.project_dir,
            warehouse_base=paths.warehouse,
            artifacts_dir=paths.dbt_cloud_artifacts,
            token=token,
        )
    except ValueError as exc:  # the jobs or environments file
        raise ConfigError(f"tenant settings {tenant.settings_file}: [tenant.sandbox] {exc}") from None
    except (RuntimeError, OSError) as exc:
        raise ServerStartError(f"the sandbox dbt Cloud server did not start: {exc}") from None


def start_object_storage(paths: StackPaths, timeout: float = 120.0) -> S3Api:
    """Start the S3 API on loopback (the stand-in for S3, GCS or ADLS) and create the sandbox's bucket in it.

    Raises:
        ServerStartError: the API did not start.
    """
    api = S3Api.start(paths.s3)
    try:
        api.wait_ready(timeout)
        api.create_bucket()
    except BaseException:
        api.stop()
        raise
    return api


def make_code_remote(paths: StackPaths) -> CodeRemote:
    """A new snapshot of this checkout and the bare repository it is pushed to (see `sandbox.code_remote`); a
    previous stack's pair in the work folder (the sandbox's own) is replaced.

    Raises:
        CodeRemoteError: this checkout is not a git checkout, or git failed.
    """
    for folder in (paths.code, paths.code_remote):
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder)
    return create_code_remote(paths.code, paths.code_remote)


Progress = Callable[[str], None]


@contextlib.contextmanager
def sandbox_stack(
    root: Path | None = None,
    *,
    fresh: bool = False,
    prefect_port: int = 0,
    dbt_cloud_port: int = 0,
    tenant_file: Path | None = None,
    acknowledged: Sequence[str] = (),
    token: str | None = None,
    progress: Progress | None = None,
    ready_timeout: float = 120.0,
) -> Iterator[SandboxStack]:
    """Start the whole stack, activated in this process; stop what it started on exit.

    Args:
        root: work folder (default `.dbt2prefect/sandbox/`).
        fresh: empty the work folder first (only a folder the sandbox made).
        prefect_port, dbt_cloud_port: loopback ports; 0 picks free ones.
        tenant_file: the tenant whose project and settings to use (default: the repository's tenant).
        acknowledged: blocker findings to acknowledge in the stack's tenant settings.
        token: the dbt Cloud token the sandbox accepts (default: a new random one).
        progress: told what is happening, in a few words, before each phase.

    Raises:
        WorkdirError, PortInUseError, ServerStartError: see the functions above.
    """
    say = progress or (lambda message: None)
    source = load_tenant(tenant_file)
    folder = Path(root or DEFAULT_ROOT).expanduser().resolve()
    claiming, created = unclaimed(folder), _first_missing(folder)
    paths = prepare_workdir(folder, fresh=fresh)
    started = False
    try:
        with _started_stack(
            paths, source, prefect_port, dbt_cloud_port, tenant_file, acknowledged, token, say, ready_timeout
        ) as stack:
            started = True
            yield stack
    except BaseException:
        # A start that failed leaves a folder the user handed over as it was (not marked as the sandbox's).
        if claiming and not started:
            release_workdir(paths, created=created)
        raise


@contextlib.contextmanager
def _started_stack(
    paths: StackPaths,
    source: TenantSettings,
    prefect_port: int,
    dbt_cloud_port: int,
    tenant_file: Path | None,
    acknowledged: Sequence[str],
    token: str | None,
    say: Progress,
    ready_timeout: float,
) -> Iterator[SandboxStack]:
    with contextlib.ExitStack() as stop:
        say("starting the Prefect server")
        prefect = stop.enter_context(PrefectServer.start(paths.prefect_home, port=prefect_port))
        say("starting the S3 API")
        s3 = stop.enter_context(start_object_storage(paths, ready_timeout))
        say("loading raw data")
        generated = ensure_raw_data(paths, source)
        say("starting the sandbox dbt Cloud API")
        cloud = stop.enter_context(start_dbt_cloud(paths, source, dbt_cloud_port, token))
        say("pushing a snapshot of this checkout to the sandbox's git remote")
        remote = make_code_remote(paths)
        written = write_tenant_file(
            paths, cloud, source=tenant_file, acknowledged=acknowledged, bucket=f"s3://{BUCKET}", remote=remote
        )
        say("waiting for the Prefect API")
        prefect.wait_ready(ready_timeout)
        tenant = load_tenant(written)
        sink = stop.enter_context(NotificationSink.start(paths.notifications))
        with prefect_api(prefect.api_url):
            say("registering profile and notification blocks")
            blocks = register_profile_blocks(tenant, paths.warehouse) + register_notification_blocks(tenant, sink)
        stack = SandboxStack(
            paths, cloud, prefect, written, tuple(blocks), generated, notifications=sink, s3=s3, remote=remote
        )
        say("starting a process worker")
        worker = stop.enter_context(stack.start_worker())
        worker.wait_ready(ready_timeout)
        stack = dataclasses.replace(stack, worker=worker)
        with stack.activated():
            yield stack
