"""dbt Cloud CI and merge jobs → one GitHub Actions workflow for the repository. Rendering, plus a read of the
project's schema macro.

What dbt Cloud does, and the workflow with it:
- A CI job runs on pull requests to the branch its environment builds (pull-request triggers on), a draft only when
  the job says so (`triggers_on_draft_pr`); a draft marked ready for review starts it. A merge job runs on pushes to
  the branch it watches.
- The job's own commands run as written, with deferral added (`--defer --state <dir>` on the commands that resolve
  refs), never a selection: the state is the manifest of the latest successful run on the target of the environment
  the job defers to (`dbt2prefect artifacts fetch`).
- Each pull request builds into its own schema, `dbt_cloud_pr_<job id>_<pr number>`, dropped when the pull request
  closes or merges; a newer push cancels the stale run of the same pull request.
- The job's threads, timeout and environment variables, and the `DBT_CLOUD_*` variables dbt Cloud sets, reach dbt;
  the docs and source-freshness checkboxes run as steps whose failure does not fail the run.

Safety: secrets only in the env of the steps that run dbt; `permissions: contents: read`; actions pinned by commit;
the merge job under the `production` environment; no text from job data reaches a `${{ }}` expression (`literal`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from dbt2prefect.dbt_cli import ParsedStep
from dbt2prefect.escaping import shell_line, shell_word
from dbt2prefect.names import PR_SCHEMA_PREFIX, pr_schema, workflow_cleanup_id, workflow_job_id
from dbt2prefect.profile_fields import SNOWFLAKE_ENV
from dbt2prefect.tenant import TenantSettings
from migration.emit import repo_path
from migration.plan import MigrationPlan, PlannedCiJob
from migration.steps import STATE_OPTIONS

STATE_DIR = "state"
"""Where the workflow puts the state manifest: relative to the dbt project, as dbt resolves `--state`."""
PROFILES_DIR = "ci-profiles"
SECRET_FIELDS = {
    **{field: SNOWFLAKE_ENV[field] for field in ("account", "user", "role", "warehouse", "database", "schema")},
    "private_key": "SNOWFLAKE_PRIVATE_KEY",
    "private_key_passphrase": "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE",
}
"""Snowflake profile field → the environment variable it is read from (key-pair authentication)."""
THREADS_ENV = "SNOWFLAKE_THREADS"
_OPTIONAL = ("private_key_passphrase",)
DEFER_COMMANDS = (
    "build",
    "run",
    "test",
    "seed",
    "snapshot",
    "compile",
    "ls",
    "docs generate",
    "show",
    "run-operation",
    "clone",
)
"""The commands dbt Cloud's deferral reaches (those that resolve refs or select by state); others run as written."""
ACTIONS = {
    "actions/checkout": ("d23441a48e516b6c34aea4fa41551a30e30af803", "v6.1.0"),
    "actions/setup-python": ("ece7cb06caefa5fff74198d8649806c4678c61a1", "v6.3.0"),
}
"""Actions the workflow uses, pinned by commit (the tag is written beside it as a comment)."""
STORE_CREDENTIALS = {
    "s3": ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
    "az": ("AZURE_STORAGE_CONNECTION_STRING",),
    "abfs": ("AZURE_STORAGE_CONNECTION_STRING",),
}
"""fsspec scheme of the artifact store → the variables its backend reads credentials from."""
PR_EVENTS = ["opened", "synchronize", "reopened", "ready_for_review", "closed"]
_BRANCH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
CLEANUP_MACRO = "dbt2prefect_drop_pr_schemas"
CLEANUP_MACRO_SQL = f"""\
{{% macro {CLEANUP_MACRO}() %}}
  {{#- Written by the dbt2prefect CI workflow: drops the pull request's schemas, target.schema and
      target.schema_*, as dbt Cloud does when a pull request closes; never a schema of another name. -#}}
  {{%- set prefix = target.schema | lower -%}}
  {{%- if not prefix.startswith('{PR_SCHEMA_PREFIX}') -%}}
    {{{{ exceptions.raise_compiler_error("refusing to drop schema " ~ target.schema ~ ": not a pull request's") }}}}
  {{%- endif -%}}
  {{%- set listed = list_schemas(target.database) -%}}
  {{%- set column = 'name' if 'name' in listed.column_names else listed.column_names[0] -%}}
  {{%- for row in listed -%}}
    {{%- set schema = row[column] -%}}
    {{%- if schema | lower == prefix or (schema | lower).startswith(prefix ~ '_') -%}}
      {{%- do log("dropping schema " ~ target.database ~ "." ~ schema, info=true) -%}}
      {{%- do adapter.drop_schema(api.Relation.create(database=target.database, schema=schema)) -%}}
    {{%- endif -%}}
  {{%- endfor -%}}
{{% endmacro %}}
"""
"""The macro the cleanup job writes into the checkout's macro folder and runs with `dbt run-operation`."""


def literal(text: str) -> str:
    """Text from job data as GitHub Actions reads it literally: `${{` becomes the expression `${{ '${{' }}`.

    The one escape function of workflow files; every value from job data (names, commands, variable values)
    goes through it, so no expression from data is ever evaluated.
    """
    return text.replace("${{", "${{ '${{' }}")


def main_branch(tenant: TenantSettings) -> str:
    """The branch pull requests merge into: the one the deployment's code comes from (default main)."""
    return tenant.code_storage.branch if tenant.code_storage is not None else "main"


def branch_problem(branch: str) -> str | None:
    """Why a branch name cannot be written into the workflow's filters and conditions, or None."""
    if _BRANCH.match(branch) and ".." not in branch:
        return None
    return f"branch {branch!r} has characters other than letters, digits, '.', '_', '/' and '-'"


def workflow_file_name(tenant_name: str) -> str:
    """The workflow's default file name; `emit` writes it next to prefect.yaml (copy it to .github/workflows/)."""
    return f"{tenant_name}.dbt-ci.yml"


def deferred_line(step: ParsedStep, defer: bool = True, state_dir: str = STATE_DIR) -> str:
    """A step as dbt Cloud runs it: its own arguments, plus `--defer --state <state_dir>` on a command of
    DEFER_COMMANDS when the job defers. Nothing is selected or narrowed; a step that sets state flags itself is kept
    as written (translation reports those flags), as is any other command (`source freshness`, `deps`)."""
    args = ["dbt", *step.args]
    if not defer or step.command not in DEFER_COMMANDS or any(step.sets(name) for name in STATE_OPTIONS):
        return shell_line(args)
    return shell_line([*args, "--defer", "--state", state_dir])


def secret_name(tenant: TenantSettings, connection: str, variable: str) -> str:
    """The repository secret holding `variable` for a connection: the block name in upper case, then the variable."""
    return f"{github_secret_name(tenant.block_name(connection))}_{variable}"


def github_secret_name(name: str) -> str:
    """A name as a GitHub secret name (upper case; letters, digits and underscores)."""
    return re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_")


def _connection_secrets(ci: PlannedCiJob) -> list[str]:
    """The connection variables a job reads from secrets (a pull request's schema is its own, not a secret)."""
    return [v for f, v in SECRET_FIELDS.items() if not (f == "schema" and ci.event == "pull_request")]


def _state_secrets(tenant: TenantSettings) -> list[str]:
    scheme = tenant.artifact_store_url.split("://", 1)[0] if "://" in tenant.artifact_store_url else ""
    return [*STORE_CREDENTIALS.get(scheme, ()), tenant.dbt_cloud.token_env]


def required_secrets(plan: MigrationPlan, tenant: TenantSettings) -> list[str]:
    """Every repository secret the workflow reads (sorted)."""
    names = set(_state_secrets(tenant)) if any(ci.state_target for ci in plan.ci_jobs) else set()
    for ci in plan.ci_jobs:
        names.update(secret_name(tenant, ci.connection, var) for var in _connection_secrets(ci))
        names.update(ci.secret_env_vars.values())
    return sorted(names)


def ci_profile(profile_name: str, target: str) -> dict[str, Any]:
    """profiles.yml for the workflow: one Snowflake output named `target`, every field read from the environment."""
    output: dict[str, Any] = {"type": "snowflake"}
    for field, variable in SECRET_FIELDS.items():
        default = ", ''" if field in _OPTIONAL else ""
        output[field] = f"{{{{ env_var('{variable}'{default}) }}}}"
    output["threads"] = f"{{{{ env_var('{THREADS_ENV}') | as_number }}}}"
    return {profile_name: {"target": target, "outputs": {target: output}}}


def _uses(action: str, **with_: Any) -> dict[str, Any]:
    sha, _tag = ACTIONS[action]
    step: dict[str, Any] = {"uses": f"{action}@{sha}"}
    if with_:
        step["with"] = with_
    return step


def _dbt_cloud_env(ci: PlannedCiJob) -> dict[str, str]:
    """The variables dbt Cloud sets in a run (its run id is GitHub's here)."""
    env = {
        "DBT_CLOUD_ACCOUNT_ID": str(ci.account_id),
        "DBT_CLOUD_PROJECT_ID": str(ci.project_id),
        "DBT_CLOUD_ENVIRONMENT_ID": str(ci.environment_id),
        "DBT_CLOUD_JOB_ID": str(ci.job_id),
        "DBT_CLOUD_RUN_ID": "${{ github.run_id }}",
    }
    if ci.event == "pull_request":
        return env | {
            "DBT_CLOUD_RUN_REASON_CATEGORY": "github_pull_request",
            "DBT_CLOUD_RUN_REASON": "GitHub pull request #${{ github.event.pull_request.number }}",
            "DBT_CLOUD_PR_ID": "${{ github.event.pull_request.number }}",
            "DBT_CLOUD_GIT_SHA": "${{ github.event.pull_request.head.sha }}",
            "DBT_CLOUD_GIT_BRANCH": "${{ github.head_ref }}",
        }
    return env | {
        "DBT_CLOUD_RUN_REASON_CATEGORY": "other",
        "DBT_CLOUD_RUN_REASON": "GitHub push to ${{ github.ref_name }}",
        "DBT_CLOUD_GIT_SHA": "${{ github.sha }}",
        "DBT_CLOUD_GIT_BRANCH": "${{ github.ref_name }}",
    }


def _job_env(ci: PlannedCiJob, tenant: TenantSettings, tenant_file: str) -> dict[str, str]:
    """Job-level env: nothing secret (secrets go to the dbt steps only)."""
    env = {name: literal(value) for name, value in sorted(ci.env_vars.items())}
    env |= {
        "DBT2PREFECT_TENANT_FILE": tenant_file,
        "DBT_PROJECT_DIR": repo_path(tenant.project_dir),
        "DBT_PROFILES_DIR": PROFILES_DIR,
        THREADS_ENV: str(ci.threads),
    }
    if ci.event == "pull_request":
        env[SNOWFLAKE_ENV["schema"]] = pr_schema(ci.job_id, "${{ github.event.pull_request.number }}")
    return env | _dbt_cloud_env(ci)


def _secret_env(ci: PlannedCiJob, tenant: TenantSettings) -> dict[str, str]:
    env = {var: f"${{{{ secrets.{secret_name(tenant, ci.connection, var)} }}}}" for var in _connection_secrets(ci)}
    env |= {name: f"${{{{ secrets.{secret} }}}}" for name, secret in sorted(ci.secret_env_vars.items())}
    return env


def _setup_steps(ci: PlannedCiJob, tenant: TenantSettings, checkout: dict[str, Any]) -> list[dict[str, Any]]:
    profile = yaml.safe_dump(ci_profile(tenant.profile_name, ci.target), sort_keys=False, width=200)
    return [
        _uses("actions/checkout", **checkout, **{"persist-credentials": False}),
        _uses("actions/setup-python", **{"python-version": tenant.image_python}),
        {"name": "Install the pinned toolkit", "run": "pip install -c constraints.txt ."},
        {
            "name": "Write the profile (fields from the environment)",
            "run": f'mkdir -p "$DBT_PROFILES_DIR"\ncat > "$DBT_PROFILES_DIR/profiles.yml" <<\'EOF\'\n{profile}EOF\n',
        },
        {"name": "dbt deps", "run": "dbt deps"},
    ]


def _concurrency(ci: PlannedCiJob, both: bool) -> dict[str, Any]:
    """Per pull request, a newer run cancelling the stale one; per job (queued) for a merge job, and for a CI job
    whose pull requests share schemas."""
    job = workflow_job_id(ci.job_id, ci.event, both=both)
    if ci.event == "pull_request" and ci.schema_isolated:
        return {"group": f"{job}-${{{{ github.event.pull_request.number }}}}", "cancel-in-progress": True}
    return {"group": job, "cancel-in-progress": False}


def _run_job(ci: PlannedCiJob, tenant: TenantSettings, tenant_file: str, both: bool) -> dict[str, Any]:
    secrets = _secret_env(ci, tenant)
    state = {var: f"${{{{ secrets.{var} }}}}" for var in _state_secrets(tenant)}
    project_dir = repo_path(tenant.project_dir)
    pr = ci.event == "pull_request"
    checkout = {"ref": "${{ github.event.pull_request.head.sha }}"} if pr else {}
    steps = _setup_steps(ci, tenant, checkout)
    if ci.state_target is not None:
        steps.insert(
            3,
            {
                "name": f"Fetch the state: the latest successful run on {ci.state_target}",
                "env": state,
                "run": shell_line(
                    [
                        "dbt2prefect",
                        "artifacts",
                        "fetch",
                        "--target",
                        ci.state_target,
                        "--to",
                        f"{project_dir}/{STATE_DIR}",
                    ]
                ),
            },
        )
    for step in ci.steps:
        entry: dict[str, Any] = {"name": literal(step.line), "env": secrets, "run": literal(step.line)}
        if step.checkbox:
            entry["continue-on-error"] = True
        steps.append(entry)
    if pr:
        condition = f"github.event_name == 'pull_request' && github.event.action != 'closed' && github.base_ref == '{ci.branch}'"
        if not ci.draft_pr:
            condition += " && !github.event.pull_request.draft"
    else:
        condition = f"github.event_name == 'push' && github.ref == 'refs/heads/{ci.branch}'"
    job: dict[str, Any] = {
        "name": literal(f"{ci.job_name} (dbt Cloud job {ci.job_id})"),
        "if": condition,
        "runs-on": "ubuntu-latest",
    }
    if not pr:
        job["environment"] = "production"
    if ci.timeout_seconds > 0:
        job["timeout-minutes"] = math.ceil(ci.timeout_seconds / 60)
    job["concurrency"] = _concurrency(ci, both)
    job["env"] = _job_env(ci, tenant, tenant_file)
    job["steps"] = steps
    return job


def _cleanup_job(ci: PlannedCiJob, tenant: TenantSettings, tenant_file: str) -> dict[str, Any]:
    """Drops the pull request's schemas when it closes or merges (in the pull request's concurrency group: a running
    build of it is cancelled first)."""
    macro_dir = f"{repo_path(tenant.project_dir)}/{_macro_paths(tenant.project_dir)[0]}"
    steps = _setup_steps(ci, tenant, {"ref": "${{ github.event.pull_request.base.sha }}"})
    steps += [
        {
            "name": "Write the cleanup macro",
            "run": f"set -o noclobber\ncat > {shell_word(f'{macro_dir}/{CLEANUP_MACRO}.sql')} <<'EOF'\n"
            f"{CLEANUP_MACRO_SQL}EOF\n",
        },
        {
            "name": "Drop the pull request's schemas",
            "env": _secret_env(ci, tenant),
            "run": f"dbt run-operation {CLEANUP_MACRO}",
        },
    ]
    env = _job_env(ci, tenant, tenant_file)
    return {
        "name": literal(f"{ci.job_name} (dbt Cloud job {ci.job_id}): drop the pull request's schema"),
        "if": f"github.event_name == 'pull_request' && github.event.action == 'closed' && "
        f"github.base_ref == '{ci.branch}'",
        "runs-on": "ubuntu-latest",
        "timeout-minutes": 30,
        "concurrency": {
            "group": f"{workflow_job_id(ci.job_id)}-${{{{ github.event.pull_request.number }}}}",
            "cancel-in-progress": True,
        },
        "env": env,
        "steps": steps,
    }


def workflow_document(plan: MigrationPlan, tenant: TenantSettings, tenant_file: str) -> dict[str, Any]:
    """The workflow as a dict: pull requests to each CI job's branch run it, pushes to a merge job's branch run that."""
    triggers: dict[str, Any] = {}
    for event in ("pull_request", "push"):
        branches = sorted({ci.branch for ci in plan.ci_jobs if ci.event == event})
        if branches:
            triggers[event] = {"branches": branches}
    if "pull_request" in triggers:
        triggers["pull_request"]["types"] = PR_EVENTS
    events: dict[int, set[str]] = {}
    for ci in plan.ci_jobs:
        events.setdefault(ci.job_id, set()).add(ci.event)
    jobs: dict[str, Any] = {}
    for ci in plan.ci_jobs:
        both = len(events[ci.job_id]) > 1
        name = workflow_job_id(ci.job_id, ci.event, both=both)
        jobs[name] = _run_job(ci, tenant, tenant_file, both)
        if ci.event == "pull_request":
            jobs[workflow_cleanup_id(ci.job_id)] = _cleanup_job(ci, tenant, tenant_file)
    return {
        "name": f"dbt CI ({plan.tenant})",
        "on": triggers,
        "permissions": {"contents": "read"},
        "jobs": jobs,
    }


def render_workflow(plan: MigrationPlan, tenant: TenantSettings, *, source: str, tenant_file: Path) -> str:
    """The workflow file (deterministic), its header naming the command that regenerates it and the secrets.

    Args:
        source: the command that regenerates the file (it names the inventory used).
        tenant_file: the tenant settings file, written relative to the repository root when inside it.
    """
    secrets = required_secrets(plan, tenant)
    shared = [ci for ci in plan.ci_jobs if not ci.schema_isolated]
    header = [
        f"# Generated by `{literal(source)}`; do not edit by hand.",
        "# Copy it to .github/workflows/ to run it.",
        "# dbt Cloud CI jobs run on the pull-request events and draft rules of their triggers, merge jobs on pushes to",
        "# the branch they watch. Each runs the job's own commands with deferral added (`--defer --state`, nothing",
        "# narrowed) on the manifest of the latest successful run on the target its environment defers to",
        "# (`dbt2prefect artifacts fetch`; before the first run in the store it needs dbt Cloud's latest production",
        f"# run, read with the token in {tenant.dbt_cloud.token_env}). A pull request builds into its own schema,",
        "# dbt_cloud_pr_<job id>_<pr number>, dropped when it closes; a newer push cancels its stale run.",
        "# Repository secrets (Settings > Secrets and variables > Actions); the SNOWFLAKE_* ones hold the values of",
        "# each connection's profile block (`dbt2prefect blocks register`, key-pair authentication), the",
        "# *_DBT_ENV_SECRET_* ones the value of the Prefect Secret block they name (upper case, '-' as '_'):",
        *[f"#   {name}" for name in _wrapped(secrets)],
        "# Merge jobs run under the GitHub environment `production`: keep their secrets there, limited to the",
        "# branch they watch (Settings > Environments).",
        "# Until the first job is cut over, the state is the manifest of dbt Cloud's latest successful run in the",
        f"# environment mapped to the target: add the dbt Cloud token as the secret {tenant.dbt_cloud.token_env}.",
        "# Reading the artifact store (the tenant's artifact_store_url) needs its fsspec backend's credentials",
        "# in the environment (e.g. AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for s3://); add them to `env`.",
    ]
    if "://" not in tenant.artifact_store_url:
        header.append("# The artifact store is a local folder (artifact_store_url): the runner cannot read it.")
    for ci in shared:
        header.append(
            f"# Job {ci.job_id}: the project's generate_schema_name puts some nodes outside the pull request's schema;"
        )
        header.append("#   its pull requests run one at a time (see the plan's ci_isolation finding).")
    document = workflow_document(plan, tenant, repo_path(tenant_file))
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=110, allow_unicode=True)
    for action, (sha, tag) in ACTIONS.items():
        body = body.replace(f"uses: {action}@{sha}\n", f"uses: {action}@{sha}  # {tag}\n")
    return "\n".join(header) + "\n" + body


class _Dumper(yaml.SafeDumper):
    """Writes a multi-line string as a literal block (`run: |`), as people write workflow scripts, and a value used
    twice in full each time (no YAML anchors)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def _wrapped(names: Sequence[str], width: int = 100) -> list[str]:
    lines: list[str] = []
    for name in names:
        if lines and len(lines[-1]) + len(name) + 1 <= width:
            lines[-1] += f" {name}"
        else:
            lines.append(name)
    return lines


# --- Does the project's generate_schema_name keep every node in the pull request's schema? ---

_MACRO = re.compile(r"{%-?\s*macro\s+generate_schema_name\s*\(")
_PROBE_SCHEMA = "dbt2prefect_probe_schema"
_PROBE_CUSTOM = "dbt2prefect_probe_custom"


@dataclass(frozen=True)
class SchemaIsolation:
    """What the project's schema macro does with a pull request's schema (target.schema)."""

    isolated: bool
    reason: str = ""
    macro_file: str | None = None
    custom_schemas: tuple[str, ...] = ()
    checked: bool = True
    """False when the macro could not be evaluated outside dbt."""

    def consequence(self) -> str:
        """What the macro means for a CI job's pull requests, in words (for a finding)."""
        if not self.checked:
            return f"{self.reason}: whether pull requests build into their own schema is not known"
        schemas = f" ({', '.join(self.custom_schemas)})" if self.custom_schemas else ""
        return (
            f"{self.reason}: those nodes{schemas} are built into the same schemas by every pull request, not into "
            "its own dbt_cloud_pr_<job id>_<pr number>, and the cleanup on close does not drop them (dbt Cloud "
            "does the same with this macro)"
        )


class _Return(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


def _macro_paths(project_dir: Path) -> list[str]:
    try:
        project = yaml.safe_load((project_dir / "dbt_project.yml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        project = {}
    paths = project.get("macro-paths") if isinstance(project, dict) else None
    return [str(p) for p in paths] if isinstance(paths, list) and paths else ["macros"]


def _custom_schemas(project_dir: Path) -> tuple[str, ...]:
    """The `+schema`/`schema` values dbt_project.yml configures (node configs in SQL files are not read)."""
    try:
        project = yaml.safe_load((project_dir / "dbt_project.yml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return ()
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("+schema", "schema") and isinstance(value, str):
                    found.add(value)
                else:
                    walk(value)

    for section in ("models", "seeds", "snapshots"):
        walk(project.get(section) if isinstance(project, dict) else None)
    return tuple(sorted(found))


def _render_schema(source: str, target_name: str, custom: str | None, env: Mapping[str, str]) -> str:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    def do_return(value: Any) -> str:
        raise _Return(value)

    def env_var(name: str, default: str | None = None) -> str:
        if name in env:
            return env[name]
        if default is None:
            raise LookupError(f"env_var({name!r}) has no value here")
        return default

    def default_schema(custom_name: str | None, node: Any = None) -> str:
        return _PROBE_SCHEMA if custom_name is None else f"{_PROBE_SCHEMA}_{custom_name.strip()}"

    jinja = SandboxedEnvironment(undefined=StrictUndefined, extensions=["jinja2.ext.do"])
    jinja.globals.update(
        target={"schema": _PROBE_SCHEMA, "name": target_name, "database": "probe_db", "type": "snowflake"},
        env_var=env_var,
        log=lambda *args, **kwargs: "",
        default__generate_schema_name=default_schema,
    )
    jinja.globals["return"] = do_return
    template = jinja.from_string(source + "\n{{ generate_schema_name(custom, node) }}")
    node = {"resource_type": "model", "name": "probe", "fqn": ["probe"], "config": {}, "package_name": "probe"}
    try:
        return template.render(custom=custom, node=node).strip()
    except _Return as returned:
        return str(returned.value).strip()


@lru_cache(maxsize=32)
def _schema_isolation(project_dir: Path, target_name: str, env: tuple[tuple[str, str], ...]) -> SchemaIsolation:
    files = [
        path
        for folder in _macro_paths(project_dir)
        for path in sorted((project_dir / folder).rglob("*.sql"))
        if _MACRO.search(path.read_text(encoding="utf-8", errors="replace"))
    ]
    if not files:
        return SchemaIsolation(isolated=True)  # dbt's own macro: target.schema, or target.schema_<custom>
    path = files[0]
    shown = repo_path(path)
    source = path.read_text(encoding="utf-8", errors="replace")
    try:
        default = _render_schema(source, target_name, None, dict(env))
        custom = _render_schema(source, target_name, _PROBE_CUSTOM, dict(env))
    except Exception as exc:  # the macro uses what only dbt provides: say it could not be checked
        return SchemaIsolation(
            isolated=False,
            reason=f"generate_schema_name in {shown} could not be evaluated outside dbt ({type(exc).__name__}: "
            f"{exc}); check it by hand",
            macro_file=shown,
            checked=False,
        )
    if _PROBE_SCHEMA not in default.lower():
        return SchemaIsolation(
            isolated=False,
            reason=f"generate_schema_name in {shown} builds nodes without a custom schema into {default!r}, not "
            "into target.schema",
            macro_file=shown,
        )
    if _PROBE_SCHEMA not in custom.lower():
        return SchemaIsolation(
            isolated=False,
            reason=f"generate_schema_name in {shown} builds a node with a custom schema into that schema as named, "
            "whatever target.schema is",
            macro_file=shown,
            custom_schemas=_custom_schemas(project_dir),
        )
    return SchemaIsolation(isolated=True, macro_file=shown)


def schema_isolation(project_dir: Path, target_name: str, env: Mapping[str, str] | None = None) -> SchemaIsolation:
    """Whether every node a pull request builds lands in its own schema (target.schema or target.schema_<custom>),
    judged by evaluating the project's generate_schema_name (in its macro-paths) for target `target_name`, with
    and without a custom schema. dbt's default macro isolates; a macro that ignores target.schema does not."""
    return _schema_isolation(project_dir.resolve(), target_name, tuple(sorted((env or {}).items())))
