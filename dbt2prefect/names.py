"""Every name derived from a dbt Cloud job, with its parser: what one command writes, another recognises here.

| name | form | what carries it |
|---|---|---|
| job key | `job-<id>` | its ledger folder, its run summary's artifact key (and schedules applied before slugs had names) |
| schedule slug | `job-<id>--<job name as a slug>` | the job's schedule; the "Created By" of every run the schedule creates |
| trigger | `job-<id>-after-job-<upstream id>` | the automation that starts a chained job |
| notification | `job-<id>-notify-<setting id>` | the automation of one notification setting for one job |
| before-start | `notify-<setting id>-before-start` | a setting's automation on runs that died before the flow started |
| tag | `dbt-cloud-job-<id>` | every flow run of the job (and before-start automations, one tag per job) |
| run name | `job-<id> <job name> (<generated>)` | every flow run of the job; `parity-job-<id> ...` for a parity run, `shadow job-<id> ...` for a shadow twin |
| started run name | `job-<id> <job name> (run-job)` | a run `dbt2prefect run-job` starts (named at creation) |
| shadow tag | `shadow` | a shadow twin (instead of the job's tag) |
| shadow deployment | `<deployment>-shadow` | the deployment of the shadow flow (the parallel-run period) |
| shadow trigger | `<deployment>-shadow-on-dbt-cloud-run` | the trigger that starts it on each completed dbt Cloud run |
| CI workflow job | `dbt-cloud-job-<id>`, `...-merge`, `...-cleanup` | the GitHub Actions jobs of a CI or merge job |
| pull-request schema | `dbt_cloud_pr_<id>_<pr number>` | the schema a CI job's pull request builds into, as dbt Cloud names it |
| guard deployment | `<deployment>-guard` | the deployment of the guard flow (the guarded window after cutover) |
| guard trigger | `job-<id>-guard` | the automation that starts the guard flow when a run of the job fails |

A parser accepts exactly what its builder makes (ASCII digits without sign or leading zero) and answers None for
anything else: a schedule or automation whose name is not of these forms was made by someone else, and is never
changed or deleted. A builder refuses a negative or non-integer id (ValueError), as no parser would read it back.

A schedule slug carries the job's name because the Prefect UI lists a deployment's schedules by slug and shows a
scheduled run's creator as its schedule's slug (`FlowRun.created_by.display_value`): the one place an upcoming run
names its job before the flow starts (a scheduled run's name is generated and its tags are the deployment's). The
name part is what the UI's schedule form accepts (`^[a-z0-9]+([_-]+[a-z0-9]+)*$`: an editable schedule keeps it),
so a name is folded to ASCII lower case, other characters become `-`, and it is cut at `SLUG_NAME_LENGTH`; the
`--` after the id keeps a slug apart from every other name here (`job-7--notify-9` is no notification's). A slug
is read back by its id alone (`schedule_job_id`): a renamed job, or a schedule applied as `job-<id>`, is still the
job's schedule, and apply renames it in place.

Why names, not only parameters: every schedule passes the job's id and name as the parameters `dbt_cloud_job_id` /
`dbt_cloud_job_name`, but a Prefect schedule has no tags of its own (a scheduled run gets the deployment's), and
flow-run events carry the run's name and tags, not its parameters or schedule. So the flow names its run after the
job and tags it when it starts (for the UI's filters). Automations that follow a job (chained jobs, notifications)
match the run's name: Prefect's server caches a run's related resources (its tags among them) from the run's first
event for minutes, so a tag added at run time is missing from the events of that run. A parity candidate run of a
job (parameter `parity_candidate`) is named `parity-job-<id> ...`, so those automations ignore it: after cutover,
checking parity again must not start chained jobs or notify anyone. A shadow twin (parameter `shadow_of_run`, the
dbt Cloud run it twins) is named `shadow job-<id> ...` and tagged `shadow`, never with the job's tag, for the same
reason: it runs beside dbt Cloud, which still starts the chained jobs and sends the notifications.
"""

from __future__ import annotations

import operator
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

_ID = r"(0|[1-9][0-9]*)"
_JOB_KEY = re.compile(rf"job-{_ID}", re.ASCII)
_TRIGGER = re.compile(rf"job-{_ID}-after-job-{_ID}", re.ASCII)
_NOTIFICATION = re.compile(rf"job-{_ID}-notify-{_ID}", re.ASCII)
_BEFORE_START = re.compile(rf"notify-{_ID}-before-start", re.ASCII)
_SCHEDULE_SLUG = re.compile(rf"job-{_ID}(?:--[a-z0-9]+(?:-[a-z0-9]+)*)?", re.ASCII)
_RUN_NAME = re.compile(rf"(parity-|shadow )?job-{_ID}(?: .*)?", re.ASCII | re.DOTALL)
_GUARD = re.compile(rf"job-{_ID}-guard", re.ASCII)

JOB_TAG_PREFIX = "dbt-cloud-job-"
_TAG = re.compile(rf"{JOB_TAG_PREFIX}{_ID}", re.ASCII)
PARITY_PREFIX = "parity-"
"""What a parity candidate run's name starts with, before `job-<id>`."""
SHADOW_PREFIX = "shadow "
"""What a shadow twin's name starts with, before `job-<id>`."""
SHADOW_TAG = "shadow"
"""The tag of every shadow twin (and of the shadow deployment)."""
PR_SCHEMA_PREFIX = "dbt_cloud_pr_"
"""What the schema of a CI job's pull request starts with (dbt Cloud's naming; the cleanup job drops only these)."""
UNNAMED_RUN = "!*job-[0-9]*"
"""The flow-run name pattern (Prefect event matching, fnmatch) of a run that no flow has named yet (neither
`job-<id> ...` nor `parity-job-<id> ...`): a scheduled run keeps the name Prefect generated until the flow starts,
so one that dies before (git clone, package install, infrastructure) is known only by this and its deployment."""


def _digits(value: int) -> str:
    number = operator.index(value)
    if number < 0 or isinstance(value, bool):
        raise ValueError(f"{value!r} is not a dbt Cloud id (a non-negative integer)")
    return str(number)


def _match(pattern: re.Pattern[str], text: str | None) -> re.Match[str] | None:
    return pattern.fullmatch(text) if isinstance(text, str) else None


# ----------------------------------------------------------------------------------------- job key, schedule slug


def job_key(job_id: int) -> str:
    """`job-<id>`: the short name of a job wherever one is needed (schedule slug, ledger folder, artifact key)."""
    return f"job-{_digits(job_id)}"


def job_key_id(text: str | None) -> int | None:
    """The job id of a job key `job-<id>`, else None."""
    found = _match(_JOB_KEY, text)
    return int(found[1]) if found else None


SLUG_NAME_LENGTH = 60
"""At most this many characters of the job's name go into its schedule's slug (cut at a `-`)."""


def _slug_words(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    words = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    if len(words) <= SLUG_NAME_LENGTH:
        return words
    cut = words[:SLUG_NAME_LENGTH]
    if words[SLUG_NAME_LENGTH] != "-" and "-" in cut:
        cut = cut.rsplit("-", 1)[0]  # a whole word, not half of one
    return cut.strip("-")


def schedule_slug(job_id: int, job_name: str | None = None) -> str:
    """The slug of a job's schedule: `job-<id>--<name>` (the name folded to a slug), `job-<id>` without a name
    (or one with nothing a slug can hold)."""
    words = _slug_words(job_name or "")
    return f"{job_key(job_id)}--{words}" if words else job_key(job_id)


def schedule_job_id(slug: str | None) -> int | None:
    """The job id of a schedule slug `job-<id>` or `job-<id>--<name>`, else None (a schedule someone else made)."""
    found = _match(_SCHEDULE_SLUG, slug)
    return int(found[1]) if found else None


def is_job_slug(slug: str | None) -> bool:
    """True for slugs `job-<id>` and `job-<id>--<name>` (schedules this tool created)."""
    return schedule_job_id(slug) is not None


# ----------------------------------------------------------------------------------------- triggers (chained jobs)


def trigger_name(job_id: int, upstream_job_id: int) -> str:
    """The stable name of a chained job's trigger (the automation's name); apply matches on it."""
    return f"job-{_digits(job_id)}-after-job-{_digits(upstream_job_id)}"


def trigger_jobs(name: str | None) -> tuple[int, int] | None:
    """(chained job id, upstream job id) of a trigger name `job-<id>-after-job-<id>`, else None."""
    found = _match(_TRIGGER, name)
    return (int(found[1]), int(found[2])) if found else None


def is_trigger_name(name: str | None) -> bool:
    """True for names `job-<id>-after-job-<id>` (triggers this tool created)."""
    return trigger_jobs(name) is not None


# ----------------------------------------------------------------------------------------- notification automations


def notification_name(job_id: int, notification_id: int) -> str:
    """The stable name of the automation of one notification setting for one job; apply matches on it."""
    return f"job-{_digits(job_id)}-notify-{_digits(notification_id)}"


def notification_ids(name: str | None) -> tuple[int, int] | None:
    """(job id, notification setting id) of a name `job-<id>-notify-<id>`, else None."""
    found = _match(_NOTIFICATION, name)
    return (int(found[1]), int(found[2])) if found else None


def before_start_name(notification_id: int) -> str:
    """The name of the automation that tells a setting's failure destination of runs that died before the flow
    started (one per setting: such a run has no job's name yet, see `UNNAMED_RUN`)."""
    return f"notify-{_digits(notification_id)}-before-start"


def before_start_id(name: str | None) -> int | None:
    """The notification setting id of a name `notify-<id>-before-start`, else None."""
    found = _match(_BEFORE_START, name)
    return int(found[1]) if found else None


def is_before_start_name(name: str | None) -> bool:
    """True for names `notify-<id>-before-start`."""
    return before_start_id(name) is not None


def is_notification_name(name: str | None) -> bool:
    """True for names `job-<id>-notify-<id>` and `notify-<id>-before-start` (automations this tool created)."""
    return notification_ids(name) is not None or is_before_start_name(name)


# ----------------------------------------------------------------------------------------- tags and run names


def job_tag(job_id: int) -> str:
    """The tag of every flow run that replaces dbt Cloud job `job_id`."""
    return f"{JOB_TAG_PREFIX}{_digits(job_id)}"


def tag_job_id(tag: str | None) -> int | None:
    """The job id of a tag `dbt-cloud-job-<id>`, else None."""
    found = _match(_TAG, tag)
    return int(found[1]) if found else None


def run_name_prefix(job_id: int) -> str:
    """What the name of every run of job `job_id` starts with (`job-<id> `, the space included)."""
    return f"{job_key(job_id)} "


def runs_of_job(job_id: int) -> str:
    """The flow-run name pattern (Prefect event matching, fnmatch) of every run of job `job_id`."""
    return f"{run_name_prefix(job_id)}*"


def job_label(parameters: Mapping[str, Any]) -> str | None:
    """`job-<id> <name>` of the job the parameters belong to (`parity-job-<id> <name>` for a parity candidate run
    of it, `shadow job-<id> <name>` for a shadow twin), or None for a run of no job. A run's name is its label and
    Prefect's generated name in parentheses."""
    job_id = parameters.get("dbt_cloud_job_id")
    if job_id is None:
        return None
    name = parameters.get("dbt_cloud_job_name")
    label = f"{run_name_prefix(int(job_id))}{name}" if name else job_key(int(job_id))
    if parameters.get("shadow_of_run") is not None:
        return f"{SHADOW_PREFIX}{label}"
    return f"{PARITY_PREFIX}{label}" if parameters.get("parity_candidate") else label


STARTED_BY = "run-job"
"""What a run `dbt2prefect run-job` starts has in parentheses after its job label, where Prefect's generated name
is in the name of a scheduled run."""


def started_run_name(parameters: Mapping[str, Any]) -> str:
    """`job-<id> <job name> (run-job)`: the name a run of a job started by hand gets at creation, so that the
    automations that follow the job (its runs' names, `runs_of_job`) take it for one of the job's runs.

    Raises:
        ValueError: the parameters name no job (`dbt_cloud_job_id`).
    """
    label = job_label(parameters)
    if label is None:
        raise ValueError("the parameters name no dbt Cloud job (dbt_cloud_job_id)")
    return f"{label} ({STARTED_BY})"


def run_name_job(name: str | None) -> tuple[int, bool] | None:
    """(job id, whether a candidate run: parity or shadow) of a flow-run name `job-<id> ...` /
    `parity-job-<id> ...` / `shadow job-<id> ...`, else None (a name Prefect generated, a run of no job)."""
    found = _match(_RUN_NAME, name)
    return (int(found[2]), found[1] is not None) if found else None


def job_parameters(job_id: int, job_name: str) -> dict[str, Any]:
    """The parameters that name a job on its schedule's runs."""
    return {"dbt_cloud_job_id": job_id, "dbt_cloud_job_name": job_name}


# ----------------------------------------------------------------------------------------- the parallel-run period


def shadow_tag() -> str:
    """The tag of a shadow twin: it replaces the job's tag, so nothing that follows the job's runs sees the twin."""
    return SHADOW_TAG


def shadow_deployment_name(deployment_name: str) -> str:
    """`<deployment>-shadow`: the deployment that runs the shadow flow."""
    return f"{deployment_name}-{SHADOW_TAG}"


def shadow_trigger_name(deployment_name: str) -> str:
    """The name of the trigger that starts the shadow flow on each completed dbt Cloud run."""
    return f"{shadow_deployment_name(deployment_name)}-on-dbt-cloud-run"


# ----------------------------------------------------------------------------------------- the guarded window


GUARD_SUFFIX = "-guard"


def guard_name(deployment_name: str) -> str:
    """`<deployment>-guard`: the deployment that runs the guard flow (see `migration.guard`)."""
    return f"{deployment_name}{GUARD_SUFFIX}"


def guard_trigger_name(job_id: int) -> str:
    """The name of the automation that starts the guard flow when a run of job `job_id` fails."""
    return f"job-{_digits(job_id)}{GUARD_SUFFIX}"


def guard_trigger_job(name: str | None) -> int | None:
    """The job id of a guard trigger name `job-<id>-guard`, else None."""
    found = _match(_GUARD, name)
    return int(found[1]) if found else None


# ----------------------------------------------------------------------------------------- CI and merge jobs


def workflow_job_id(job_id: int, event: str = "pull_request", *, both: bool = False) -> str:
    """The GitHub Actions job that runs a dbt Cloud CI or merge job (`-merge` for the push side of a job that runs
    on both)."""
    return f"{JOB_TAG_PREFIX}{_digits(job_id)}" + ("-merge" if both and event == "push" else "")


def workflow_cleanup_id(job_id: int) -> str:
    """The GitHub Actions job that drops a CI job's pull-request schemas when the pull request closes."""
    return f"{workflow_job_id(job_id)}-cleanup"


def pr_schema(job_id: int, pr_number: int | str) -> str:
    """The schema a pull request of a CI job builds into, as dbt Cloud names it (`pr_number` may be an
    expression the workflow fills in)."""
    return f"{PR_SCHEMA_PREFIX}{_digits(job_id)}_{pr_number}"
