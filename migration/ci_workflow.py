"""dbt Cloud CI and merge jobs → one GitHub Actions workflow for the repository. Pure rendering.

dbt Cloud runs a CI job's steps on each pull request, deferring to a production environment's latest manifest;
a merge job's steps when a pull request merges. The workflow does the same with the run-artifact store: it
fetches the manifest of the latest successful run on the job's state target (`dbt2prefect artifacts fetch`) and
runs each step with `--defer --state` on it (slim CI). A step without a selection gets `--select state:modified+`.

dbt connects with a profiles.yml written in the workflow whose fields read the same environment variables as
`dbt2prefect blocks register` (SNOWFLAKE_*), filled from repository secrets named after the profile block of the
job's connection (`DBT_WG_DEV_SNOWFLAKE_ACCOUNT` for block `dbt-wg-dev`).
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from dbt2prefect.dbt_cli import ParsedStep
from dbt2prefect.profile_fields import SNOWFLAKE_ENV
from dbt2prefect.tenant import REPO_ROOT, TenantSettings
from migration.plan import MigrationPlan, PlannedCiJob
from migration.steps import STATE_OPTIONS

STATE_DIR = "state"
"""Where the workflow puts the state manifest: relative to the dbt project, as dbt resolves `--state`."""
PROFILES_DIR = "ci-profiles"
SLIM_SELECTION = "state:modified+"
SECRET_FIELDS = {
    **{field: SNOWFLAKE_ENV[field] for field in ("account", "user", "role", "warehouse", "database", "schema")},
    "private_key": "SNOWFLAKE_PRIVATE_KEY",
    "private_key_passphrase": "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE",
}
"""Snowflake profile field → the environment variable it is read from (key-pair authentication)."""
_OPTIONAL = ("private_key_passphrase",)
_SELECTIONS = ("select", "selector", "inline")
SLIM_COMMANDS = ("build", "run", "test", "seed", "snapshot", "compile")
"""The commands that build or check nodes: slim CI narrows and defers them; other steps run as written."""


def main_branch(tenant: TenantSettings) -> str:
    """The branch pull requests merge into: the one the deployment's code comes from (default main)."""
    return tenant.code_storage.branch if tenant.code_storage is not None else "main"


def workflow_file_name(tenant_name: str) -> str:
    """The workflow's default file name; `emit` writes it next to prefect.yaml (copy it to .github/workflows/)."""
    return f"{tenant_name}.dbt-ci.yml"


def workflow_job_id(job_id: int) -> str:
    """The workflow job that runs a dbt Cloud job."""
    return f"dbt-cloud-job-{job_id}"


def slim_ci_line(step: ParsedStep, state_dir: str = STATE_DIR) -> str:
    """A step as slim CI runs it: a command of SLIM_COMMANDS gets `--defer --state <state_dir>`, and
    `--select state:modified+` when the step selects nothing. A step that sets state flags itself is kept as
    written (translation reports those flags), as is any other command (`source freshness`, `run-operation`)."""
    args = ["dbt", *step.args]
    if step.command not in SLIM_COMMANDS or any(step.sets(name) for name in STATE_OPTIONS):
        return shlex.join(args)
    if not any(step.sets(name) for name in _SELECTIONS):
        args += ["--select", SLIM_SELECTION]
    return shlex.join([*args, "--defer", "--state", state_dir])


def secret_name(tenant: TenantSettings, connection: str, variable: str) -> str:
    """The repository secret holding `variable` for a connection: the block name in upper case, then the variable."""
    return f"{tenant.block_name(connection).upper().replace('-', '_')}_{variable}"


def required_secrets(plan: MigrationPlan, tenant: TenantSettings) -> list[str]:
    """Every repository secret the workflow reads (sorted)."""
    connections = {job.connection for job in plan.ci_jobs}
    return sorted(secret_name(tenant, c, var) for c in connections for var in SECRET_FIELDS.values())


def ci_profile(profile_name: str, target: str) -> dict[str, Any]:
    """profiles.yml for the workflow: one Snowflake output named `target`, every field read from the environment."""
    output: dict[str, Any] = {"type": "snowflake"}
    for field, variable in SECRET_FIELDS.items():
        default = ", ''" if field in _OPTIONAL else ""
        output[field] = f"{{{{ env_var('{variable}'{default}) }}}}"
    output["threads"] = "{{ env_var('SNOWFLAKE_THREADS', '8') | as_number }}"
    return {profile_name: {"target": target, "outputs": {target: output}}}


def _repo_path(path: Path) -> str:
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return path.as_posix()


def _job(ci: PlannedCiJob, tenant: TenantSettings, tenant_file: str) -> dict[str, Any]:
    project_dir = _repo_path(tenant.project_dir)
    env = {
        "DBT2PREFECT_TENANT_FILE": tenant_file,
        "DBT_PROJECT_DIR": project_dir,
        "DBT_PROFILES_DIR": PROFILES_DIR,
    }
    for variable in SECRET_FIELDS.values():
        env[variable] = f"${{{{ secrets.{secret_name(tenant, ci.connection, variable)} }}}}"
    profile = yaml.safe_dump(ci_profile(tenant.profile_name, ci.target), sort_keys=False, width=200)
    steps: list[dict[str, Any]] = [
        {"uses": "actions/checkout@v4"},
        {"uses": "actions/setup-python@v5", "with": {"python-version": tenant.image_python}},
        {"name": "Install the pinned toolkit", "run": "pip install -c constraints.txt ."},
        {
            "name": f"Fetch the state: the latest successful run on {ci.state_target}",
            "run": shlex.join(
                ["dbt2prefect", "artifacts", "fetch", "--target", ci.state_target, "--to", f"{project_dir}/{STATE_DIR}"]
            ),
            # Before the first cutover the store has no such run: the state is then dbt Cloud's latest one.
            "env": {tenant.dbt_cloud.token_env: f"${{{{ secrets.{tenant.dbt_cloud.token_env} }}}}"},
        },
        {
            "name": "Write the profile (fields from the environment)",
            "run": f"mkdir -p {PROFILES_DIR}\ncat > {PROFILES_DIR}/profiles.yml <<'EOF'\n{profile}EOF\n",
        },
        {"name": "dbt deps", "run": "dbt deps"},
    ]
    steps += [{"name": line, "run": line} for line in ci.steps]
    job: dict[str, Any] = {
        "name": f"{ci.job_name} (dbt Cloud job {ci.job_id})",
        "if": f"github.event_name == '{ci.event}'",
        "runs-on": "ubuntu-latest",
    }
    if ci.timeout_seconds > 0:
        job["timeout-minutes"] = math.ceil(ci.timeout_seconds / 60)
    job["env"] = env
    job["steps"] = steps
    return job


def workflow_document(plan: MigrationPlan, tenant: TenantSettings, tenant_file: str) -> dict[str, Any]:
    """The workflow as a dict: pull requests to the main branch run CI jobs, pushes to it run merge jobs."""
    branch = main_branch(tenant)
    events = sorted({ci.event for ci in plan.ci_jobs})
    triggers: dict[str, Any] = {event: {"branches": [branch]} for event in events}
    jobs = {workflow_job_id(ci.job_id): _job(ci, tenant, tenant_file) for ci in plan.ci_jobs}
    return {"name": f"dbt CI ({plan.tenant})", "on": triggers, "jobs": jobs}


def render_workflow(plan: MigrationPlan, tenant: TenantSettings, *, source: str, tenant_file: Path) -> str:
    """The workflow file (deterministic), its header naming the command that regenerates it and the secrets.

    Args:
        source: the command that regenerates the file.
        tenant_file: the tenant settings file, written relative to the repository root when inside it.
    """
    secrets = required_secrets(plan, tenant)
    header = [
        f"# Generated by `{source}`; do not edit by hand.",
        "# Copy it to .github/workflows/ to run it.",
        "# dbt Cloud CI jobs run on pull requests, merge jobs on pushes; each step defers to the manifest of the",
        "# latest successful run in the artifact store (`dbt2prefect artifacts fetch`).",
        "# Repository secrets (Settings > Secrets and variables > Actions), the SNOWFLAKE_* values of each",
        "# connection's profile block (`dbt2prefect blocks register`); key-pair authentication:",
        *[f"#   {name}" for name in _wrapped(secrets)],
        "# Until the first job is cut over, the state is the manifest of dbt Cloud's latest successful run in the",
        f"# environment mapped to the target: add the dbt Cloud token as the secret {tenant.dbt_cloud.token_env}.",
        "# Reading the artifact store (the tenant's artifact_store_url) needs its fsspec backend's credentials",
        "# in the environment (e.g. AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for s3://); add them to `env`.",
    ]
    document = workflow_document(plan, tenant, _repo_path(tenant_file))
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=110, allow_unicode=True)
    return "\n".join(header) + "\n" + body


class _Dumper(yaml.SafeDumper):
    """Writes a multi-line string as a literal block (`run: |`), as people write workflow scripts."""


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
