"""The sandbox dbt Cloud server honours the API contract the migration client relies on (NOTES.md §2-§4)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from sandbox.dbt_cloud import SEED_JOBS, SandboxDbtCloud, create_app

ACCOUNT = 70403103922125
PROJECT = 70403103926818
PROD_ENV = 70403103931988
CI_ENV = 70403103931990
NIGHTLY = 70403103936332
JOBS = f"/api/v2/accounts/{ACCOUNT}/jobs/"


def _writable(job: dict[str, Any]) -> dict[str, Any]:
    keep = {
        "account_id", "project_id", "environment_id", "name", "state", "settings", "execution",
        "triggers", "generate_docs", "run_generate_sources", "run_compare_changes", "run_lint",
        "errors_on_lint_failure", "lifecycle_webhooks", "description", "execute_steps", "schedule", "job_type",
    }  # fmt: skip
    return {k: v for k, v in job.items() if k in keep}


def test_list_jobs_envelope_and_pagination(cloud: SandboxDbtCloud, http: httpx.Client) -> None:
    cloud.app.state.add_generated_jobs(120)
    first = http.get(JOBS, params={"limit": 100, "offset": 0}).json()
    assert set(first) == {"status", "data", "extra"}
    assert first["status"]["code"] == 200 and first["status"]["is_success"] is True
    assert first["extra"]["pagination"] == {"count": 100, "total_count": 128}  # 8 active seed jobs + 120
    second = http.get(JOBS, params={"limit": 100, "offset": 100}).json()
    assert second["extra"]["pagination"] == {"count": 28, "total_count": 128}
    ids = [j["id"] for j in first["data"] + second["data"]]
    assert ids == sorted(ids) and len(set(ids)) == 128


def test_limit_above_100_is_rejected(http: httpx.Client) -> None:
    response = http.get(JOBS, params={"limit": 101})
    assert response.status_code == 400
    assert "between 1 and 100" in response.json()["data"]["limit"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"state": "deleted"}, ["Legacy daily run (retired)"]),
        ({"environment_id": CI_ENV}, ["CI: pull request build"]),
        ({"project_id": 1}, []),
        ({"name__icontains": "FINANCE"}, ["Hourly finance refresh", "Month-start finance close"]),
    ],
)
def test_job_filters(http: httpx.Client, params: dict[str, Any], expected: list[str]) -> None:
    body = http.get(JOBS, params=params).json()
    assert sorted(j["name"] for j in body["data"]) == expected
    assert body["extra"]["pagination"]["total_count"] == len(expected)


def test_default_state_filter_hides_deleted_jobs_and_all_shows_them(http: httpx.Client) -> None:
    active = http.get(JOBS).json()["data"]
    everything = http.get(JOBS, params={"state": "all"}).json()["data"]
    assert all(j["state"] == 1 for j in active)
    assert len(everything) == len(active) + 1


def test_order_by_descending_and_invalid_order(http: httpx.Client) -> None:
    ids = [j["id"] for j in http.get(JOBS, params={"order_by": "-id"}).json()["data"]]
    assert ids == sorted(ids, reverse=True)
    assert http.get(JOBS, params={"order_by": "cron"}).status_code == 400


def test_auth_requires_token_or_bearer_prefix(cloud: SandboxDbtCloud) -> None:
    url = f"{cloud.url}{JOBS}"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": cloud.token}).status_code == 401  # no prefix
    assert httpx.get(url, headers={"Authorization": "Token wrong"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {cloud.token}"}).status_code == 200
    body = httpx.get(url).json()
    assert body["status"]["is_success"] is False and body["data"] is None


def test_unknown_job_run_and_account_are_404(http: httpx.Client) -> None:
    assert http.get(f"{JOBS}1/").status_code == 404
    assert http.get(f"/api/v2/accounts/{ACCOUNT}/runs/1/").status_code == 404
    assert http.get("/api/v2/accounts/1/jobs/").status_code == 404


def test_update_job_round_trip_flips_job_type(http: httpx.Client) -> None:
    job = http.get(f"{JOBS}{NIGHTLY}/").json()["data"]
    body = _writable(job) | {"triggers": {**job["triggers"], "schedule": False}}
    response = http.post(f"{JOBS}{NIGHTLY}/", json=body)
    assert response.status_code == 200, response.text
    stored = http.get(f"{JOBS}{NIGHTLY}/").json()["data"]
    assert stored["triggers"]["schedule"] is False
    assert stored["job_type"] == "other"
    assert stored["execute_steps"] == job["execute_steps"]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (lambda b: b["triggers"].update(custom_branch_only=False), "triggers", "'custom_branch_only' was unexpected"),
        (lambda b: b["triggers"].pop("on_merge"), "triggers", "'on_merge' is a required property"),
        (lambda b: b["triggers"].update(schedule=None), "triggers", "is not of type 'boolean'"),
        (lambda b: b.pop("settings"), "settings", "'settings' is a required property"),
        (lambda b: b.update(cron_humanized="At 02:00"), "cron_humanized", "is read-only"),
        (lambda b: b.update(id=NIGHTLY), "id", "is read-only"),
        (lambda b: b.update(job_completion_trigger_condition=None), "job_completion_trigger_condition", "read-only"),
        (lambda b: b.update(job_type="nightly"), "job_type", "is not one of ci, scheduled"),
        (lambda b: b.update(cost_optimization_features=["turbo"]), "cost_optimization_features", "must be a list"),
        (lambda b: b.update(description=None), "description", "None is not of type"),
        (lambda b: b.update(generate_sources="yes"), "generate_sources", "is not of type 'boolean'"),
        (lambda b: b["schedule"]["date"].update(type="monthly"), "schedule", "date.type must be one of"),
        (lambda b: b["schedule"]["time"].update(type="at_exact_hours", hours=None), "schedule", "hours"),
    ],
)
def test_invalid_job_update_is_400_with_the_reason_in_data(
    http: httpx.Client, change: Any, field: str, message: str
) -> None:
    body = _writable(http.get(f"{JOBS}{NIGHTLY}/").json()["data"])
    body["triggers"] = dict(body["triggers"])
    body["schedule"] = json.loads(json.dumps(body["schedule"]))
    change(body)
    response = http.post(f"{JOBS}{NIGHTLY}/", json=body)
    assert response.status_code == 400
    payload = response.json()
    # The live API's shape: a generic user_message, the reason keyed by field in `data`.
    assert payload["status"]["user_message"].startswith("The request was invalid")
    assert message in payload["data"][field]


def test_update_with_state_2_deletes_the_job_as_the_live_api_does(http: httpx.Client) -> None:
    body = _writable(http.get(f"{JOBS}{NIGHTLY}/").json()["data"]) | {"state": 2}
    response = http.post(f"{JOBS}{NIGHTLY}/", json=body)
    assert response.status_code == 200 and response.json()["data"]["state"] == 2
    assert NIGHTLY not in [j["id"] for j in http.get(JOBS).json()["data"]]
    assert http.post(f"{JOBS}{NIGHTLY}/", json=body | {"state": 1}).status_code == 404


@pytest.mark.parametrize(("mode", "expected"), [("keep", True), ("reset", False)])
def test_omitted_fields_are_kept_or_reset_by_the_switch(mode: str, expected: bool) -> None:
    with (
        SandboxDbtCloud.start(omitted_fields=mode) as cloud,
        httpx.Client(base_url=cloud.url, headers={"Authorization": f"Token {cloud.token}"}) as http,
    ):
        job = http.get(f"{JOBS}{NIGHTLY}/").json()["data"]
        full = _writable(job) | {"generate_sources": True, "compare_changes_flags": "--select state:modified+"}
        assert http.post(f"{JOBS}{NIGHTLY}/", json=full).status_code == 200
        partial = {k: v for k, v in full.items() if k not in ("generate_sources", "compare_changes_flags")}
        stored = http.post(f"{JOBS}{NIGHTLY}/", json=partial).json()["data"]
    assert stored["generate_sources"] is expected
    assert (stored["compare_changes_flags"] == "--select state:modified+") is expected


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v3/accounts/{ACCOUNT}/environments/{PROD_ENV}/",
        f"/api/v3/accounts/{ACCOUNT}/projects/{PROJECT}/environments/{PROD_ENV}/",
    ],
)
def test_v3_environment_has_credentials(http: httpx.Client, path: str) -> None:
    env = http.get(path, params={"include_related": "credentials"}).json()["data"]
    assert env["name"] == "Production" and env["deployment_type"] == "production"
    assert env["credentials"]["target_name"] == "prod" and env["credentials"]["schema"] == "analytics"


def test_environment_in_another_project_is_404(http: httpx.Client) -> None:
    assert http.get(f"/api/v3/accounts/{ACCOUNT}/projects/1/environments/{PROD_ENV}/").status_code == 404


def test_run_trigger_requires_a_cause(http: httpx.Client) -> None:
    response = http.post(f"{JOBS}{NIGHTLY}/run/", json={})
    assert response.status_code == 400
    assert "'cause' is a required property" in response.json()["data"]["cause"]


def test_runs_list_filters_and_order(cloud: SandboxDbtCloud, http: httpx.Client) -> None:
    state = cloud.app.state
    runs = [state.add_run_record(NIGHTLY, status)["id"] for status in (10, 20, 10)]
    state.add_run_record(70403103936340, 10)
    body = http.get(f"/api/v2/accounts/{ACCOUNT}/runs/", params={"job_definition_id": NIGHTLY}).json()
    assert [r["id"] for r in body["data"]] == runs  # oldest first by default, as the API
    latest = http.get(
        f"/api/v2/accounts/{ACCOUNT}/runs/",
        params={"job_definition_id": NIGHTLY, "status": 10, "order_by": "-id", "limit": 1},
    ).json()["data"]
    assert [r["id"] for r in latest] == [runs[2]]
    assert " " in latest[0]["created_at"] and "T" not in latest[0]["created_at"]  # run timestamps use a space
    assert http.get(f"/api/v2/accounts/{ACCOUNT}/runs/", params={"order_by": "status"}).status_code == 400


def test_seed_file_states_its_shape_and_seeds_a_new_account(tmp_path: Any) -> None:
    doc = json.loads(SEED_JOBS.read_text())
    assert next(iter(doc)) == "_shape" and "GET /api/v2/accounts/{account_id}/jobs/" in doc["_shape"]
    schedule_types = {(j["schedule"]["date"]["type"], j["schedule"]["time"]["type"]) for j in doc["data"]}
    assert {d for d, _ in schedule_types} == {"every_day", "days_of_week", "custom_cron", "interval_cron"}
    assert {t for _, t in schedule_types} == {"every_hour", "at_exact_hours"}
    # A team's own export: two jobs of another account, no environments file.
    other = [dict(j, account_id=11, environment_id=22) for j in doc["data"][:2]]
    jobs_file = tmp_path / "jobs.json"
    jobs_file.write_text(json.dumps({"status": {"code": 200}, "data": other, "extra": {}}))
    app = create_app(jobs_file)
    try:
        assert app.state.account_id == 11
        assert app.state.get_environment(22)["credentials"]["target_name"] == "prod"
    finally:
        app.close()


def test_a_restarted_server_numbers_runs_after_the_runs_in_its_folder(tmp_path: Any) -> None:
    job_id = int(json.loads(SEED_JOBS.read_text())["data"][0]["id"])
    first = create_app(artifacts_dir=tmp_path)
    try:
        earlier = first.state.create_run(job_id, "before the restart")["id"]
    finally:
        first.close()
    (tmp_path / str(earlier) / "step-4").mkdir(parents=True)  # what the runner keeps of that run
    again = create_app(artifacts_dir=tmp_path)
    try:
        assert again.state.create_run(job_id, "after the restart")["id"] > earlier
    finally:
        again.close()


def test_faults_are_deterministic_for_a_seed(cloud: SandboxDbtCloud, http: httpx.Client) -> None:
    def statuses() -> list[int | str]:
        cloud.set_faults(rate_429=0.2, rate_5xx=0.2, rate_drop=0.2, retry_after=3, seed=7)
        out: list[int | str] = []
        for _ in range(30):
            try:
                response = http.get(JOBS, params={"limit": 1})
                out.append(response.status_code)
                if response.status_code == 429:
                    assert response.headers["Retry-After"] == "3"
            except httpx.RemoteProtocolError:
                out.append("dropped")
        return out

    first, second = statuses(), statuses()
    assert first == second
    assert {200, 429, "dropped"} <= set(first) and {500, 502, 503} & set(first)


def test_admin_endpoint_changes_faults_at_runtime(cloud: SandboxDbtCloud, http: httpx.Client) -> None:
    assert httpx.post(f"{cloud.url}/_sandbox/faults", json={"rate_5xx": 1.0}).status_code == 401
    assert http.post("/_sandbox/faults", json={"rate_5xx": 1.0}).status_code == 200
    assert http.get(JOBS).status_code in (500, 502, 503)
    assert http.post("/_sandbox/faults", json={"rate_5xx": 2.0}).status_code == 400
    http.post("/_sandbox/faults", json={"rate_5xx": 0.0})
    assert http.get(JOBS).status_code == 200


def test_latency_is_applied(cloud: SandboxDbtCloud, http: httpx.Client) -> None:
    cloud.set_faults(latency=0.2)
    response = http.get(JOBS, params={"limit": 1})
    assert response.status_code == 200 and response.elapsed.total_seconds() >= 0.2


def test_artifacts_only_for_finished_runs(cloud: SandboxDbtCloud, http: httpx.Client) -> None:
    queued = cloud.app.state.create_run(NIGHTLY, "queued, never started")
    response = http.get(f"/api/v2/accounts/{ACCOUNT}/runs/{queued['id']}/artifacts/")
    assert response.status_code == 404
    assert "has not finished" in response.json()["status"]["user_message"]


def test_429_without_retry_after_sends_no_header(cloud: SandboxDbtCloud, http: httpx.Client) -> None:
    cloud.set_faults(rate_429=1.0, retry_after=None)
    response = http.get(JOBS)
    assert response.status_code == 429 and "retry-after" not in response.headers
