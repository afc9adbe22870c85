"""The dbt Cloud client over real HTTP against the sandbox server (faults included)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import httpx
import pytest

from dbt2prefect.dbt_cloud import RunStatus
from migration.dbt_cloud.auth import TokenAuth, resolve_token
from migration.dbt_cloud.client import DbtCloudClient
from migration.dbt_cloud.errors import (
    DbtCloudAuthError,
    DbtCloudBadRequestError,
    DbtCloudConfigError,
    DbtCloudNotFoundError,
    DbtCloudResponseError,
    DbtCloudRetriesExhaustedError,
)
from migration.dbt_cloud.models import SECRET_PREFIX, JobState, NotificationType
from migration.dbt_cloud.settings import RetryPolicy, normalize_host
from sandbox.dbt_cloud import SEED_JOBS, SandboxDbtCloud

FAST_RETRY = RetryPolicy(max_attempts=8, backoff_base=0.01, backoff_max=0.05, deadline=20.0)

NIGHTLY = 70403103936332
HOURLY = 70403103936340
CI_ENV = 70403103931990


def test_iter_jobs_pages_through_more_than_100_jobs(cloud: SandboxDbtCloud, client: DbtCloudClient) -> None:
    generated = cloud.app.state.add_generated_jobs(230)
    jobs = list(client.iter_jobs())
    ids = [j.id for j in jobs]
    assert len(ids) == 8 + 230 and len(set(ids)) == len(ids) and ids == sorted(ids)
    assert set(generated) <= set(ids)
    assert cloud.app.faults.counts["requests"] == 3  # 100 + 100 + 38


def test_small_pages_and_empty_page_end_the_loop(cloud: SandboxDbtCloud) -> None:
    with DbtCloudClient(cloud.url, cloud.account_id, cloud.token, page_size=3) as api:
        assert len(list(api.iter_jobs(state="all"))) == 9
        assert list(api.iter_jobs(project_id=1)) == []


def test_job_filters(client: DbtCloudClient) -> None:
    assert [j.name for j in client.iter_jobs(environment_id=CI_ENV)] == ["CI: pull request build"]
    deleted = list(client.iter_jobs(state="deleted"))
    assert [j.state for j in deleted] == [JobState.DELETED]
    with pytest.raises(DbtCloudConfigError, match="job state filter"):
        list(client.iter_jobs(state="paused"))


def test_update_job_round_trip_and_rollback(client: DbtCloudClient) -> None:
    before = client.get_job_dict(NIGHTLY)
    job = client.get_job(NIGHTLY)
    paused = client.update_job(job.model_copy(update={"triggers": job.triggers.model_copy(update={"schedule": False})}))
    assert paused.triggers.schedule is False
    assert client.get_job(NIGHTLY).triggers.schedule is False
    restored = client.update_job(before)  # the rollback record, as GET returned it
    assert restored.triggers.schedule is True
    assert restored.schedule == job.schedule and restored.execute_steps == job.execute_steps


def test_update_never_sends_custom_branch_only(client: DbtCloudClient) -> None:
    raw = client.get_job_dict(HOURLY)
    raw["triggers"] = {**raw["triggers"], "custom_branch_only": True}  # as older GET responses carried it
    updated = client.update_job(raw)
    assert updated.triggers.custom_branch_only is None and updated.triggers.schedule is True


def test_update_refuses_state_2(client: DbtCloudClient) -> None:
    raw = client.get_job_dict(NIGHTLY) | {"state": 2}
    with pytest.raises(DbtCloudBadRequestError, match="deletes the job") as info:
        client.update_job(raw)
    assert info.value.exit_code == 2


def test_400_carries_the_api_message(client: DbtCloudClient) -> None:
    raw = client.get_job_dict(NIGHTLY)
    raw["settings"] = {"threads": 0, "target_name": "prod"}
    with pytest.raises(DbtCloudBadRequestError) as info:
        client.update_job(raw)
    message = str(info.value)
    # The reason the live API puts in `data`, keyed by field, comes first; then its generic user_message.
    assert re.search(r"POST /api/v2/accounts/\d+/jobs/\d+/ returned 400: settings: threads must be", message)
    assert message.endswith("The request was invalid. Please double check the provided data and try again.")


def test_401_names_token_source_and_host_but_not_the_token(cloud: SandboxDbtCloud) -> None:
    wrong = "dbtc_not-the-right-token-0123456789"
    with (
        DbtCloudClient(
            cloud.url, cloud.account_id, wrong, token_source="environment variable DBT_CLOUD_API_TOKEN"
        ) as api,
        pytest.raises(DbtCloudAuthError) as info,
    ):
        api.get_job(NIGHTLY)
    message = str(info.value)
    assert "token or host wrong" in message and "DBT_CLOUD_API_TOKEN" in message and cloud.url in message
    assert f"GET /api/v2/accounts/{cloud.account_id}/jobs/{NIGHTLY}/ returned 401" in message
    assert wrong not in message and cloud.token not in message
    assert info.value.exit_code == 2
    assert cloud.app.faults.counts["requests"] == 1  # a 401 is never retried


def test_404_says_id_or_account_wrong(client: DbtCloudClient) -> None:
    with pytest.raises(DbtCloudNotFoundError, match="id or account wrong") as info:
        client.get_job(1)
    assert info.value.exit_code == 2


def test_environment_v3(client: DbtCloudClient) -> None:
    env = client.get_environment(70403103931988, project_id=70403103926818)
    assert env.name == "Production" and env.deployment_type == "production"
    assert env.credentials is not None and env.credentials.target_name == "prod"
    assert env.credentials.schema_ == "analytics"
    assert client.get_environment(CI_ENV).credentials.target_name == "ci"  # type: ignore[union-attr]


def test_latest_successful_run(cloud: SandboxDbtCloud, client: DbtCloudClient) -> None:
    state = cloud.app.state
    ok = [state.add_run_record(NIGHTLY, s)["id"] for s in (10, 10, 20)][1]
    state.add_run_record(HOURLY, 20)
    latest = client.latest_successful_run(NIGHTLY)
    assert latest is not None and latest.id == ok and latest.status == RunStatus.SUCCESS
    assert client.latest_successful_run(HOURLY) is None
    assert [r.status for r in client.list_runs(job_definition_id=NIGHTLY)] == [20, 10, 10]  # newest first


def test_faults_at_20_percent_give_the_same_jobs_in_bounded_time(
    cloud: SandboxDbtCloud, client: DbtCloudClient
) -> None:
    cloud.app.state.add_generated_jobs(250)
    clean = [j.model_dump() for j in client.iter_jobs(state="all")]
    cloud.set_faults(rate_429=0.07, rate_5xx=0.07, rate_drop=0.06, retry_after=0, seed=11)
    with DbtCloudClient(cloud.url, cloud.account_id, cloud.token, retry=FAST_RETRY, page_size=10) as api:
        faulty = [j.model_dump() for j in api.iter_jobs(state="all")]  # 26 pages, about 1 in 5 faulted
    assert faulty == clean
    counts = cloud.app.faults.counts
    assert counts["429"] and counts["drop"] and counts["500"] + counts["502"] + counts["503"]


def test_retry_after_is_honoured_until_the_rate_limit_budget_is_spent(cloud: SandboxDbtCloud) -> None:
    cloud.set_faults(rate_429=1.0, retry_after=7)
    waits: list[float] = []
    retry = RetryPolicy(rate_limit_wait=20.0)
    with (
        DbtCloudClient(cloud.url, cloud.account_id, cloud.token, retry=retry, sleep=waits.append) as api,
        pytest.raises(DbtCloudRetriesExhaustedError, match=r"after 4 attempt.*HTTP 429") as info,
    ):
        api.get_job(NIGHTLY)
    assert waits == [7.0, 7.0, 6.0]  # the header's 7 s, the last wait cut to what is left of the budget
    assert "rate_limit_minutes" in str(info.value) and info.value.exit_code == 3


def test_429_without_retry_after_backs_off_exponentially_then_succeeds(cloud: SandboxDbtCloud) -> None:
    cloud.set_faults(rate_429=1.0, retry_after=None)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 6:
            cloud.set_faults(rate_429=0.0)  # the cooldown is over

    retry = RetryPolicy(max_attempts=2, backoff_base=1.0, backoff_max=120.0)
    with DbtCloudClient(cloud.url, cloud.account_id, cloud.token, retry=retry, sleep=sleep) as api:
        assert api.get_job(NIGHTLY).id == NIGHTLY  # six 429s, more than max_attempts: 429s are budgeted in time
    for attempt, wait in enumerate(waits, start=1):
        assert 2 ** (attempt - 1) / 2 <= wait <= 2 ** (attempt - 1)  # exponential, with jitter
    assert cloud.app.faults.counts["429"] == 6


def test_429_without_retry_after_gives_up_after_the_configured_minutes(cloud: SandboxDbtCloud) -> None:
    cloud.set_faults(rate_429=1.0, retry_after=None)
    waits: list[float] = []
    retry = RetryPolicy.for_rate_limit_minutes(10)
    with (
        DbtCloudClient(cloud.url, cloud.account_id, cloud.token, retry=retry, sleep=waits.append) as api,
        pytest.raises(DbtCloudRetriesExhaustedError) as info,
    ):
        api.get_job(NIGHTLY)
    assert sum(waits) == pytest.approx(600.0)  # ten minutes of backoff in total, not ~30 s
    assert max(waits) <= retry.backoff_max and len(waits) >= 8
    message = str(info.value)
    assert "429" in message and "10.0 min of waiting" in message and "rate_limit_minutes (now 10)" in message
    assert "cannot reach" not in message


def test_rate_limit_minutes_must_be_positive() -> None:
    with pytest.raises(DbtCloudConfigError, match="rate_limit_minutes must be positive"):
        RetryPolicy.for_rate_limit_minutes(0)


def test_starting_a_run_is_not_retried_after_a_5xx(cloud: SandboxDbtCloud, client: DbtCloudClient) -> None:
    cloud.set_faults(rate_5xx=1.0)
    with pytest.raises(DbtCloudRetriesExhaustedError, match="may have acted on it; not retried") as info:
        client.trigger_job_run(NIGHTLY, cause="test")
    assert cloud.app.faults.counts["requests"] == 1
    assert "check the job's runs" in str(info.value).lower()


def test_starting_a_run_is_retried_after_a_429(tmp_path: Path) -> None:
    # No dbt step at all (no steps, no checkboxes, a project without packages), so the run ends at once.
    seed = json.loads(SEED_JOBS.read_text())["data"]
    job = next(j for j in seed if j["id"] == HOURLY)
    job |= {"generate_docs": False, "run_generate_sources": False, "execute_steps": []}
    jobs_file = tmp_path / "jobs.json"
    jobs_file.write_text(json.dumps({"data": [job]}))
    with SandboxDbtCloud.start(jobs_file, project_dir=tmp_path) as cloud:
        cloud.set_faults(rate_429=1.0, retry_after=None)

        def sleep(seconds: float) -> None:
            cloud.set_faults(rate_429=0.0)

        with DbtCloudClient(cloud.url, cloud.account_id, cloud.token, sleep=sleep) as api:
            run = api.trigger_job_run(HOURLY, cause="test")
        assert run.job_definition_id == HOURLY
        assert len(cloud.app.state.runs) == 1  # a 429 was refused before anything started


def test_connection_refused_is_retried_then_reported() -> None:
    retry = RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_max=0.01)
    # Port 9 (discard) on loopback: nothing listens there in the test environment.
    with (
        DbtCloudClient("http://127.0.0.1:9", 1, "t", retry=retry) as api,
        pytest.raises(DbtCloudRetriesExhaustedError, match=r"after 3 attempt.*connection error") as info,
    ):
        api.get_job(1)
    assert "cannot reach http://127.0.0.1:9; check the host setting" in str(info.value)
    assert "rate-limited" not in str(info.value)


def test_html_from_a_wrong_host_is_a_clear_error() -> None:
    # A server cannot be the sandbox and a captive portal at once: use a mock transport for this one.
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text="<html>Sign in</html>"))
    with (
        DbtCloudClient("https://cloud.getdbt.com", 1, "t", transport=transport) as api,
        pytest.raises(DbtCloudResponseError, match="not JSON; check that the host setting"),
    ):
        api.get_job(1)


def test_token_never_appears_in_reprs_logs_or_output(
    cloud: SandboxDbtCloud, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    cloud.set_faults(rate_5xx=0.3, rate_429=0.2, rate_drop=0.1, retry_after=0, seed=1)
    with DbtCloudClient(
        cloud.url, cloud.account_id, cloud.token, retry=RetryPolicy(max_attempts=20, backoff_base=0.01), page_size=1
    ) as api:
        list(api.iter_jobs())
        texts = [repr(api), repr(api._http.auth), str(api.__dict__)]
    with (
        DbtCloudClient(cloud.url, cloud.account_id, cloud.token + "x", retry=RetryPolicy(max_attempts=1)) as api,
        pytest.raises(DbtCloudAuthError) as info,
    ):
        api.get_job(NIGHTLY)
    captured = capsys.readouterr()
    everything = "\n".join([*texts, caplog.text, captured.out, captured.err, str(info.value), repr(info.value)])
    assert sum(cloud.app.faults.counts.values()) > cloud.app.faults.counts["requests"]  # faults were injected
    assert "retry" in caplog.text  # the retries were logged...
    assert cloud.token not in everything  # ...without the token


def test_token_auth_rejects_empty_and_redacts() -> None:
    with pytest.raises(DbtCloudConfigError, match="empty"):
        TokenAuth("  ", source="environment variable X")
    assert "secret-value" not in repr(TokenAuth("secret-value"))


def test_resolve_token_from_env_and_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WG_DBT_TOKEN", "abc")
    token, source = resolve_token("WG_DBT_TOKEN")
    assert token.get_secret_value() == "abc" and source == "environment variable WG_DBT_TOKEN"
    monkeypatch.delenv("WG_DBT_TOKEN")
    with pytest.raises(DbtCloudConfigError, match="set environment variable WG_DBT_TOKEN"):
        resolve_token("WG_DBT_TOKEN")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("emea.dbt.com", "https://emea.dbt.com"),
        ("https://cloud.getdbt.com/", "https://cloud.getdbt.com"),
        ("https://ab123.us1.dbt.com", "https://ab123.us1.dbt.com"),
        ("au.dbt.com", "https://au.dbt.com"),
        ("https://acme.getdbt.com", "https://acme.getdbt.com"),
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765"),
    ],
)
def test_host_settings(host: str, expected: str) -> None:
    assert normalize_host(host) == expected


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("", "empty"),
        ("http://emea.dbt.com", "plain http"),
        ("https://emea.dbt.com/api/v2", "without /api"),
        ("https://user:pw@emea.dbt.com", "must not contain credentials"),
    ],
)
def test_bad_host_settings(host: str, message: str) -> None:
    with pytest.raises(DbtCloudConfigError, match=message) as info:
        normalize_host(host)
    assert info.value.exit_code == 2


def test_list_runs_limit_is_checked(client: DbtCloudClient) -> None:
    with pytest.raises(DbtCloudConfigError, match="between 1 and 100"):
        client.list_runs(limit=500)


def _redirecting(location: str, seen: list[httpx.Request]) -> httpx.MockTransport:
    # A loopback server cannot be a dbt Cloud host, so redirects are shown with a mock transport.
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "emea.dbt.com":
            return httpx.Response(301, headers={"Location": location + request.url.path})
        return httpx.Response(200, json={"status": {"code": 200}, "data": {"id": 1, "account_id": 1, "project_id": 2,
                                         "environment_id": 3, "name": "moved"}})  # fmt: skip

    return httpx.MockTransport(handler)


def test_redirect_to_a_dbt_cloud_host_is_followed() -> None:
    seen: list[httpx.Request] = []
    transport = _redirecting("https://ab123.eu1.dbt.com", seen)
    with DbtCloudClient("emea.dbt.com", 1, "secret-token", transport=transport) as api:
        assert api.get_job(1).name == "moved"
    assert [r.url.host for r in seen] == ["emea.dbt.com", "ab123.eu1.dbt.com"]


def test_redirect_elsewhere_is_refused_and_names_the_host_to_set() -> None:
    seen: list[httpx.Request] = []
    transport = _redirecting("https://login.example.com", seen)
    with (
        DbtCloudClient("emea.dbt.com", 1, "secret-token", transport=transport) as api,
        pytest.raises(DbtCloudConfigError, match=r"redirected \(301\) to https://login.example.com") as info,
    ):
        api.get_job(1)
    assert "set [tenant.dbt_cloud] host" in str(info.value)
    assert [r.url.host for r in seen] == ["emea.dbt.com"]  # the token never went there


def test_400_reasons_nested_and_error_code_are_named() -> None:
    # Shape from dbt-jobs-as-code#91 plus an `error_code`; the sandbox does not guess error codes.
    body = {
        "status": {
            "code": 400,
            "is_success": False,
            "user_message": "The request was invalid.",
            "developer_message": "",
        },
        "data": {"schedule": {"time": {"hours": "This field is required."}}, "name": ["Too long."]},
        "error_code": 1234,
    }
    transport = httpx.MockTransport(lambda request: httpx.Response(400, json=body))
    with (
        DbtCloudClient("emea.dbt.com", 1, "t", transport=transport) as api,
        pytest.raises(DbtCloudBadRequestError) as info,
    ):
        api.get_job(1)
    assert str(info.value).endswith(
        "returned 400: schedule.time.hours: This field is required.; name: Too long.; "
        "The request was invalid.; error_code 1234"
    )


def test_notifications_page_through_and_name_jobs_per_outcome(cloud: SandboxDbtCloud) -> None:
    with DbtCloudClient(cloud.url, cloud.account_id, cloud.token, page_size=2) as small_pages:
        notifications = list(small_pages.iter_notifications())
    assert [n.type for n in notifications] == [NotificationType.EXTERNAL_EMAIL, NotificationType.SLACK, 1]
    assert notifications[0].external_email and NIGHTLY in notifications[0].on_failure
    assert notifications[1].slack_channel_name == "#data-alerts" and NIGHTLY in notifications[1].on_cancel


def test_environment_variables_resolve_project_then_environment_then_job(client: DbtCloudClient) -> None:
    project = client.get_job(HOURLY).project_id
    variables = client.get_environment_variables(project)
    job = client.get_job_environment_variables(project, HOURLY)
    assert variables.resolve("Production", job)["DBT_WG_REGION"] == "uk"
    assert variables.resolve("Production")["DBT_WG_REGION"] == "emea"
    assert variables.resolve("CI") == {
        "DBT_ENV_SECRET_FX_API_KEY": "**********",
        "DBT_WG_FX_SOURCE": "ecb",
        "DBT_WG_REGION": "global",
    }
    assert [n for n in variables.variables if n.startswith(SECRET_PREFIX)] == ["DBT_ENV_SECRET_FX_API_KEY"]
    with pytest.raises(DbtCloudNotFoundError):
        client.get_environment_variables(1)
