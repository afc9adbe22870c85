"""Every field of every API model may come back null or missing (NOTES.md, "Contract facts (2026-12)").

A null means "not set": it parses exactly like a missing key. Only the ids that identify an object are required.
Samples are the sandbox seed (shaped like GET /jobs/, /environments/) and a run as GET /runs/{id}/ returns it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from migration.dbt_cloud.models import (
    CompletionCondition,
    Environment,
    EnvironmentCredentials,
    Job,
    JobCompletionTrigger,
    JobExecution,
    JobSchedule,
    JobSettings,
    JobTriggers,
    Run,
    RunStep,
    ScheduleDate,
    ScheduleTime,
)
from migration.dbt_cloud.payloads import job_update_payload
from sandbox.dbt_cloud import SEED_JOBS
from sandbox.dbt_cloud.state import SEED_ENVIRONMENTS

JOB = json.loads(SEED_JOBS.read_text())["data"][0]
ENVIRONMENT = json.loads(SEED_ENVIRONMENTS.read_text())["data"][0]
STEP = {"id": 5, "index": 4, "name": "Invoke dbt with `dbt build`", "status": 10, "logs": "", "duration": "00:00:09"}
RUN = {
    "id": 9, "account_id": 1, "job_definition_id": 2, "environment_id": 3, "project_id": 4, "status": 10,
    "status_message": None, "git_sha": "abc", "git_branch": "main", "created_at": "2024-05-27 10:42:16.179903+00:00",
    "started_at": "2024-05-27 10:42:20+00:00", "finished_at": "2024-05-27 10:43:20+00:00", "duration": "00:01:04",
    "has_docs_generated": True, "has_sources_generated": False, "artifacts_saved": True, "run_steps": [STEP],
}  # fmt: skip

SAMPLES: list[tuple[type[BaseModel], dict[str, Any], set[str]]] = [
    (Job, JOB, {"id", "account_id", "project_id", "environment_id"}),
    (JobTriggers, JOB["triggers"], set()),
    (JobSchedule, JOB["schedule"], set()),
    (ScheduleDate, JOB["schedule"]["date"], set()),
    (ScheduleTime, JOB["schedule"]["time"], set()),
    (JobSettings, JOB["settings"], set()),
    (JobExecution, JOB["execution"], set()),
    (JobCompletionTrigger, {"condition": {"job_id": 1, "project_id": 2, "statuses": [10]}}, {"condition"}),
    (CompletionCondition, {"job_id": 1, "project_id": 2, "statuses": [10, 20]}, {"job_id"}),
    (Environment, ENVIRONMENT, {"id"}),
    (EnvironmentCredentials, ENVIRONMENT["credentials"], set()),
    (Run, RUN, {"id", "status"}),
    (RunStep, STEP, {"index"}),
]
CASES = [
    pytest.param(model, sample, name, name in required, id=f"{model.__name__}.{name}")
    for model, sample, required in SAMPLES
    for name in (info.alias or field for field, info in model.model_fields.items())
]


@pytest.mark.parametrize(("model", "sample", "name", "required"), CASES)
def test_null_parses_like_missing(model: type[BaseModel], sample: dict[str, Any], name: str, required: bool) -> None:
    nulled = {**sample, name: None}
    missing = {k: v for k, v in sample.items() if k != name}
    if required:
        for data in (nulled, missing):
            with pytest.raises(ValidationError, match=name):
                model.model_validate(data)
        return
    assert model.model_validate(nulled) == model.model_validate(missing)


@pytest.mark.parametrize(("model", "sample", "required"), [(m, s, r) for m, s, r in SAMPLES])
def test_only_identifying_fields_are_required(
    model: type[BaseModel], sample: dict[str, Any], required: set[str]
) -> None:
    assert {info.alias or name for name, info in model.model_fields.items() if info.is_required()} == required
    assert model.model_validate(sample) == model.model_validate({**sample, "field_added_in_2027": {"x": 1}})


def test_the_spec_default_triggers_parse() -> None:
    triggers = {"github_webhook": False, "git_provider_webhook": None, "schedule": False, "on_merge": None}
    job = Job.from_api({**JOB, "triggers": triggers})
    assert job.triggers == JobTriggers()


def test_a_job_with_every_optional_field_null_parses_and_updates() -> None:
    required = {"id", "account_id", "project_id", "environment_id"}
    nulled = {k: (v if k in required else None) for k, v in JOB.items()}
    job = Job.from_api(nulled)
    assert job.schedule.cron is None and job.execute_steps == [] and job.settings == JobSettings()
    body = job_update_payload(nulled)
    assert None not in [v for k, v in body.items() if k not in ("dbt_version", "deferring_job_definition_id",
                                                                "deferring_environment_id")]  # fmt: skip
    assert body["triggers"] == {"github_webhook": False, "git_provider_webhook": False, "schedule": False,
                                "on_merge": False}  # fmt: skip


def test_a_chain_without_an_upstream_job_is_not_a_chain() -> None:
    for condition in ({"condition": None}, {"condition": {"job_id": None, "statuses": None}}):
        assert (
            Job.from_api({**JOB, "job_completion_trigger_condition": condition}).job_completion_trigger_condition
            is None
        )


def test_run_steps_without_id_and_null_items() -> None:
    run = Run.from_api({**RUN, "run_steps": [{k: v for k, v in STEP.items() if k != "id"}, None]})
    assert [(s.id, s.index) for s in run.run_steps] == [(None, 4)]
