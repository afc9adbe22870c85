"""Job-derived names: each parser reads back what its builder made, and refuses every other name."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from prefect.server.events.schemas.events import matches

from dbt2prefect import names

IDS = (0, 7, 70403103936332)

# Names no builder makes: other people's schedules and automations, near misses, and non-ASCII digits.
NOT_OURS = (
    None,
    "",
    "job-",
    "job-007",
    "job--7",
    "job-+7",
    "job-7 ",
    " job-7",
    "Job-7",
    "job-٣",
    "job-7\n",
    "job-7-after-job-",
    "job-7-after-job-08",
    "job-7-after-job-8-extra",
    "job-7-notify-",
    "job-7-notify-9x",
    "job-7-nightly",
    "job-7--",
    "job-7--Nightly",
    "job-7---nightly",
    "job-7--nightly-",
    "job-7--nightly build",
    "notify-9-before-start-2",
    "notify--before-start",
    "dbt-cloud-job-",
    "dbt-cloud-job-07",
    "nightly",
)

ROUND_TRIPS: list[tuple[Callable[..., str], Callable[[str | None], Any], Callable[[tuple[int, ...]], Any]]] = [
    (names.job_key, names.job_key_id, lambda ids: ids[0]),
    (names.schedule_slug, names.schedule_job_id, lambda ids: ids[0]),  # without a name: `job-<id>`
    (lambda job_id: names.schedule_slug(job_id, "Nightly build"), names.schedule_job_id, lambda ids: ids[0]),
    (names.trigger_name, names.trigger_jobs, lambda ids: ids),
    (names.notification_name, names.notification_ids, lambda ids: ids),
    (names.before_start_name, names.before_start_id, lambda ids: ids[0]),
    (names.job_tag, names.tag_job_id, lambda ids: ids[0]),
]


@pytest.mark.parametrize(("build", "parse", "expected"), ROUND_TRIPS, ids=lambda f: getattr(f, "__name__", ""))
def test_each_parser_reads_back_what_its_builder_made(build: Any, parse: Any, expected: Any) -> None:
    arity = build.__code__.co_argcount - len(build.__defaults__ or ())
    for first in IDS:
        for second in IDS:
            ids = (first, second)[:arity]
            assert parse(build(*ids)) == expected(ids)


@pytest.mark.parametrize("name", NOT_OURS)
def test_no_parser_accepts_a_name_no_builder_makes(name: str | None) -> None:
    parsers = (
        names.job_key_id,
        names.schedule_job_id,
        names.trigger_jobs,
        names.notification_ids,
        names.before_start_id,
        names.tag_job_id,
    )
    assert [parse(name) for parse in parsers] == [None] * len(parsers)
    assert not names.is_job_slug(name) and not names.is_trigger_name(name) and not names.is_notification_name(name)
    assert names.run_name_job(name) is None or name == "job-7 "  # a run of job 7 whose job has an empty name


def test_the_kinds_of_name_do_not_overlap() -> None:
    made = {
        "key": names.job_key(7),
        "slug": names.schedule_slug(7, "Notify 9"),
        "trigger": names.trigger_name(7, 8),
        "notification": names.notification_name(7, 9),
        "before-start": names.before_start_name(9),
        "tag": names.job_tag(7),
    }
    read = {
        kind: [
            kind_of
            for kind_of, parse in (
                ("key", names.job_key_id),
                ("slug", names.schedule_job_id),
                ("trigger", names.trigger_jobs),
                ("notification", names.notification_ids),
                ("before-start", names.before_start_id),
                ("tag", names.tag_job_id),
            )
            if parse(name) is not None
        ]
        for kind, name in made.items()
    }
    # A key is also the slug of a schedule applied before slugs carried the job's name.
    assert read == {kind: [kind] for kind in made} | {"key": ["key", "slug"]}
    assert made == {
        "key": "job-7",
        "slug": "job-7--notify-9",
        "trigger": "job-7-after-job-8",
        "notification": "job-7-notify-9",
        "before-start": "notify-9-before-start",
        "tag": "dbt-cloud-job-7",
    }
    assert names.is_notification_name(made["notification"]) and names.is_notification_name(made["before-start"])
    assert names.is_before_start_name(made["before-start"]) and not names.is_before_start_name(made["notification"])


@pytest.mark.parametrize(
    ("job_name", "slug"),
    [
        ("Nightly production build", "job-7--nightly-production-build"),
        ("Month-start finance close (UK)", "job-7--month-start-finance-close-uk"),
        ("Crème brûlée <b>", "job-7--creme-brulee-b"),
        ("日本", "job-7"),
        ("", "job-7"),
        (None, "job-7"),
        ("word " * 20, "job-7--" + "-".join(["word"] * 12)),
        ("x" * 80, "job-7--" + "x" * names.SLUG_NAME_LENGTH),
    ],
)
def test_a_schedule_slug_carries_the_job_name_as_the_prefect_ui_accepts_it(job_name: str | None, slug: str) -> None:
    assert names.schedule_slug(7, job_name) == slug
    assert names.schedule_job_id(slug) == 7 and names.is_job_slug(slug)
    name_part = slug.removeprefix("job-7").removeprefix("--")
    assert len(name_part) <= names.SLUG_NAME_LENGTH
    # The UI's schedule form refuses any other slug (prefect-ui-library's slug rule).
    assert re.fullmatch(r"[a-z0-9]+([_-]+[a-z0-9]+)*", slug)


def test_a_renamed_job_and_an_old_slug_read_back_as_the_same_job() -> None:
    assert names.schedule_job_id("job-7") == names.schedule_job_id(names.schedule_slug(7, "Renamed")) == 7


@pytest.mark.parametrize("bad", [-1, True, 7.0, "7"])
def test_a_builder_refuses_an_id_no_parser_would_read_back(bad: Any) -> None:
    for build in (names.job_key, names.job_tag, names.before_start_name, names.workflow_job_id):
        with pytest.raises((ValueError, TypeError)):
            build(bad)
    with pytest.raises((ValueError, TypeError)):
        names.trigger_name(7, bad)


@pytest.mark.parametrize(
    ("parameters", "label", "job"),
    [
        ({"dbt_cloud_job_id": 70, "dbt_cloud_job_name": "Nightly"}, "job-70 Nightly", (70, False)),
        ({"dbt_cloud_job_id": 70}, "job-70", (70, False)),
        (
            {"dbt_cloud_job_id": 70, "dbt_cloud_job_name": "Nightly", "parity_candidate": True},
            "parity-job-70 Nightly",
            (70, True),
        ),
        (
            {"dbt_cloud_job_id": 70, "dbt_cloud_job_name": "Nightly", "parity_candidate": True, "shadow_of_run": 9},
            "shadow job-70 Nightly",
            (70, True),
        ),
        ({"dbt_cloud_job_name": "Nightly"}, None, None),
    ],
)
def test_a_run_is_named_after_its_job_and_the_name_reads_back(
    parameters: dict[str, Any], label: str | None, job: tuple[int, bool] | None
) -> None:
    assert names.job_label(parameters) == label
    run_name = f"{label} (brave-fox)" if label else "brave-fox"
    assert names.run_name_job(run_name) == job
    # The automations of the job follow exactly its own runs, and before-start ones only runs no flow named.
    assert matches(names.runs_of_job(70), run_name) is (job == (70, False))
    assert matches(names.UNNAMED_RUN, run_name) is (job is None)
    assert not matches(names.runs_of_job(7), run_name)


def test_a_schedule_passes_the_parameters_the_run_is_named_from() -> None:
    parameters = names.job_parameters(70, "Nightly")
    assert names.job_label(parameters) == "job-70 Nightly" and names.run_name_prefix(70) == "job-70 "


def test_a_run_started_by_hand_is_named_as_the_jobs_runs_and_followed_like_them() -> None:
    name = names.started_run_name(names.job_parameters(70, "Nightly"))
    assert name == "job-70 Nightly (run-job)"
    assert names.run_name_job(name) == (70, False)
    assert matches(names.runs_of_job(70), name) and not matches(names.UNNAMED_RUN, name)
    with pytest.raises(ValueError, match="no dbt Cloud job"):
        names.started_run_name({"target": "prod"})


def test_ci_workflow_jobs_and_pull_request_schemas_are_named_after_the_job() -> None:
    assert names.workflow_job_id(201) == "dbt-cloud-job-201"
    assert names.workflow_job_id(201, "push") == "dbt-cloud-job-201"
    assert names.workflow_job_id(201, "push", both=True) == "dbt-cloud-job-201-merge"
    assert names.workflow_job_id(201, "pull_request", both=True) == "dbt-cloud-job-201"
    assert names.workflow_cleanup_id(201) == "dbt-cloud-job-201-cleanup"
    assert names.pr_schema(201, 7) == "dbt_cloud_pr_201_7"
    assert names.pr_schema(201, 7).startswith(names.PR_SCHEMA_PREFIX)
