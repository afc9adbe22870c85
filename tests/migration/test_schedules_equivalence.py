"""dbt Cloud cron → Prefect schedule: the next 500 fire times must be identical on both sides.

dbt Cloud's side is cronsim (Debian cron rules, `L`, `#`, day-of-month OR day-of-week); Prefect's side is
Prefect's own server schedule code, the one its scheduler uses to create runs.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from migration.schedules import (
    PROOF_COUNT,
    InvalidCron,
    PrefectScheduleSpec,
    prefect_fire_times,
    reference_fire_times,
    translate_cron,
)

ALL_DAYS = "0,1,2,3,4,5,6"


def _ui_cron(minute: int, hours: str, days: str = ALL_DAYS) -> str:
    """The cron dbt Cloud's UI (and terraform) writes for its date/time fields."""
    return f"{minute} {hours} * * {days}"


# One entry per dbt Cloud schedule form: (form, cron).
FORMS = [
    ("every_day + every_hour 1", "0 * * * *"),
    ("every_day + at_exact_hours", _ui_cron(0, "2")),
    ("every_day + at_exact_hours, several", _ui_cron(15, "0,6,12,18")),
    ("days_of_week + every_hour 12", "0 */12 * * 0,1,2,3,4,5,6"),
    ("days_of_week + at_exact_hours weekdays", _ui_cron(30, "7", "1,2,3,4,5")),
    ("interval_cron (terraform 4 */N)", "4 */6 * * 0,1,2,3,4,5,6"),
    *[(f"every_hour interval {n}", _ui_cron(4, f"*/{n}")) for n in (1, 2, 3, 4, 5, 7, 8, 12, 23)],
    ("custom_cron minutes step", "*/15 8-18 * * 1-5"),
    ("custom_cron names", "0 6 * JAN,JUL MON-FRI"),
    ("custom_cron Sunday as 7", "0 0 * * 7"),
    ("custom_cron jobs-as-code default", "0 0 1 1 *"),
    ("L: last day of month", "0 23 L * *"),
    ("L OR weekdays (dbt docs example)", "0 0 L * FRI,SAT"),
    ("#: first Monday", "0 9 * * MON#1"),
    ("# OR day of month", "0 9 1 * MON#1"),
    ("nL: last Friday", "15 22 * * 5L"),
    ("day-of-month OR day-of-week", "0 0 1,15 * 1"),
    ("star-step day-of-month AND day-of-week", "0 12 */2 * 1"),
    ("leap day", "0 0 29 2 *"),
]


@pytest.mark.parametrize(("form", "cron"), FORMS, ids=[form for form, _ in FORMS])
def test_every_dbt_cloud_form_has_identical_fire_times(form: str, cron: str) -> None:
    result = translate_cron(cron)
    assert result.spec is not None, result.error
    assert result.equivalent, f"{form}: {result.first_difference}"
    # Recompute both sides here rather than trusting the flag.
    expected = reference_fire_times(cron)
    assert len(expected) == PROOF_COUNT
    assert prefect_fire_times(result.spec) == expected


def test_plain_cron_stays_a_cron() -> None:
    spec = translate_cron("0 */12 * * 0,1,2,3,4,5,6").spec
    assert spec == PrefectScheduleSpec("cron", "0 */12 * * 0,1,2,3,4,5,6", day_or=True, timezone="UTC")


def test_prefect_cron_alone_gets_the_or_with_hash_wrong() -> None:
    # Why the RRule exists: Prefect's cron ignores the day-of-month when day-of-week uses '#'.
    naive = prefect_fire_times(PrefectScheduleSpec("cron", "0 9 1 * MON#1"), count=5)
    assert naive != reference_fire_times("0 9 1 * MON#1", count=5)
    assert translate_cron("0 9 1 * MON#1").spec.kind == "rrule"  # type: ignore[union-attr]


def test_fixed_start_is_included() -> None:
    start = datetime(2025, 3, 1, 6, 0, tzinfo=UTC)
    spec = PrefectScheduleSpec("cron", "0 6 * * *")
    assert (
        prefect_fire_times(spec, start, 2)
        == reference_fire_times("0 6 * * *", start, 2)
        == [
            start,
            datetime(2025, 3, 2, 6, 0, tzinfo=UTC),
        ]
    )


@pytest.mark.parametrize("cron", ["0 0 * *", "0 0 ? * MON", "0 0 31 2 *", "0 0 0 * * *", "61 * * * *"])
def test_invalid_crons_are_reported_not_guessed(cron: str) -> None:
    result = translate_cron(cron)
    assert result.spec is None and result.error
    with pytest.raises(InvalidCron):
        reference_fire_times(cron)


def test_last_weekday_has_no_prefect_form() -> None:
    result = translate_cron("0 0 LW * *")
    assert result.spec is None and "no Prefect form" in (result.error or "")


def _field(low: int, high: int, names: list[str] | None = None) -> st.SearchStrategy[str]:
    number = st.integers(low, high)
    single = number.map(str) if names is None else st.one_of(number.map(str), st.sampled_from(names))
    ranges = st.tuples(number, number).map(lambda ab: f"{min(ab)}-{max(ab)}")
    steps = st.tuples(st.sampled_from(["*", str(low)]), st.integers(1, high - low + 1)).map(lambda p: f"{p[0]}/{p[1]}")
    lists = st.lists(number, min_size=2, max_size=4, unique=True).map(lambda xs: ",".join(map(str, sorted(xs))))
    return st.one_of(st.just("*"), single, ranges, steps, lists)


_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
_DOM = st.one_of(_field(1, 31), st.just("L"))
_DOW = st.one_of(
    _field(0, 7, _DAYS),
    st.tuples(st.sampled_from(_DAYS), st.integers(1, 5)).map(lambda p: f"{p[0]}#{p[1]}"),
    st.integers(0, 6).map(lambda d: f"{d}L"),
)
_CRONS = st.tuples(_field(0, 59), _field(0, 23), _DOM, _field(1, 12), _DOW).map(" ".join)


@settings(max_examples=40, deadline=None)
@given(_CRONS)
def test_generated_crons_have_identical_fire_times(cron: str) -> None:
    try:
        reference_fire_times(cron, count=1)
    except InvalidCron:
        assume(False)
    result = translate_cron(cron)
    assert result.spec is not None, result.error
    assert result.equivalent, f"{cron}: {result.first_difference}"
