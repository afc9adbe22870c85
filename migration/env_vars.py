"""dbt Cloud environment variables → what a job's schedule passes to the flow (pure: no I/O).

A run of a job gets each variable's value from the most specific scope that sets it: project default <
environment < job override. Non-secret values go into the schedule's `env_vars` parameter as they are; a secret
(`DBT_ENV_SECRET*`, masked by the API) cannot be carried, so it goes into `secret_env_vars` as the name of a
Prefect Secret block that a person fills once, one block per variable and scope (the scopes' values differ).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dbt2prefect.escaping import shell_line, shell_word
from dbt2prefect.names import job_key
from migration.dbt_cloud.models import SECRET_PREFIX, EnvironmentVariables, Job


@dataclass(frozen=True)
class AccountVariables:
    """The exported environment variables: each project's (by project id) and each job's overrides (by job id)."""

    projects: Mapping[int, EnvironmentVariables] = field(default_factory=dict)
    jobs: Mapping[int, EnvironmentVariables] = field(default_factory=dict)

    def for_job(self, job: Job, environment: str | None) -> dict[str, tuple[str, str]]:
        """Name -> (scope, value) of what a run of `job` in the environment named `environment` gets."""
        project = self.projects.get(job.project_id, EnvironmentVariables())
        return project.resolve_scopes(environment, self.jobs.get(job.id))


@dataclass(frozen=True)
class JobVariables:
    """A job's resolved variables as the flow takes them."""

    env_vars: dict[str, str]
    """Non-secret name -> value."""
    secret_blocks: dict[str, str]
    """Secret name -> the Prefect Secret block that holds its value."""
    secret_scopes: dict[str, str]
    """Secret name -> the dbt Cloud scope whose value the block must hold."""


def is_secret(name: str) -> bool:
    """True for the names dbt and dbt Cloud treat as secrets (`DBT_ENV_SECRET*`)."""
    return name.startswith(SECRET_PREFIX)


def _slug(text: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in text.lower()).split())


def secret_block_name(prefix: str, name: str, scope: str, job_id: int) -> str:
    """The Secret block of one secret variable in one scope (`<prefix>-<name>-<scope>`, as Prefect names blocks)."""
    where = job_key(job_id) if scope == "job" else scope
    return f"{_slug(prefix)}-{_slug(name)}-{_slug(where)}"


def job_variables(resolved: Mapping[str, tuple[str, str]], block_prefix: str, job_id: int) -> JobVariables:
    """Split a job's resolved variables into the values passed as they are and the secrets' blocks."""
    plain = {name: value for name, (_scope, value) in resolved.items() if not is_secret(name)}
    secrets = {name: scope for name, (scope, _value) in resolved.items() if is_secret(name)}
    blocks = {name: secret_block_name(block_prefix, name, scope, job_id) for name, scope in secrets.items()}
    return JobVariables(env_vars=plain, secret_blocks=blocks, secret_scopes=secrets)


def store_secret_command(name: str, block: str) -> str:
    """A one-line command that saves the value of environment variable `name` as Secret block `block`.

    The value is read from the environment (set it with `read -rs NAME; export NAME`), never written on the
    command line, so it stays out of shell history and process lists.
    """
    return shell_line(["dbt2prefect", "blocks", "secret", block, "--from-env", name])


def secret_setup_command(name: str, block: str) -> str:
    """The shell line a person pastes to type a secret's value (not echoed) and save it as its Secret block.

    Every word from data is quoted by the one shell escape, so the line runs exactly what it shows.
    """
    word = shell_word(name)
    return f"read -rs {word} && export {word} && {store_secret_command(name, block)}"
