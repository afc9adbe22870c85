"""dbt Cloud cron schedules → Prefect schedules, with a fire-time equivalence check.

dbt Cloud evaluates `schedule.cron` in UTC without DST, supports `L` (last day of month) and `#` (nth weekday),
and ORs day-of-month with day-of-week when both are restricted. Our reference for those semantics is cronsim
(Debian cron rules, written independently of Prefect's vendored croniter). Prefect's side is computed with the
server's own schedule classes (`prefect.server.schemas.schedules`), the code its scheduler uses to create runs.

Each cron is translated by trying, in order, the forms below and keeping the first whose next fire times equal
the reference: a Prefect Cron with `day_or=True`, a Cron with `day_or=False` (Debian cron's AND when a day field
starts with `*`), an RRule built from the parsed fields. When none matches, the closest form is kept and the
caller turns the mismatch into a finding.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Literal

from cronsim import CronSim, CronSimError

TIMEZONE = "UTC"
# Fixed start so plans are reproducible; 500 fire times cover years for daily jobs and leap days for monthly ones.
PROOF_START = datetime(2025, 1, 1, tzinfo=UTC)
PROOF_COUNT = 500
# RRules iterate from DTSTART; a recent fixed anchor keeps the scheduler's walk short and the output stable.
RRULE_DTSTART = "20250101T000000"

_RRULE_DAYS = ("SU", "MO", "TU", "WE", "TH", "FR", "SA", "SU")

ScheduleKind = Literal["cron", "rrule"]


@dataclass(frozen=True)
class PrefectScheduleSpec:
    """One Prefect schedule definition (cron or rrule), always in UTC."""

    kind: ScheduleKind
    expression: str
    day_or: bool = True
    timezone: str = TIMEZONE


@dataclass(frozen=True)
class CronTranslation:
    """The outcome of translating one dbt Cloud cron.

    `spec` is None only when the cron is invalid for dbt Cloud's semantics (`error` says why). `equivalent` is
    True when the first `checked` fire times from `PROOF_START` are identical on both sides; otherwise
    `first_difference` names the first instant that differs.
    """

    cron: str
    spec: PrefectScheduleSpec | None
    equivalent: bool
    checked: int
    first_difference: str | None = None
    error: str | None = None


class InvalidCron(ValueError):
    """The expression is not a valid five-field dbt Cloud cron."""


def reference_fire_times(cron: str, start: datetime = PROOF_START, count: int = PROOF_COUNT) -> list[datetime]:
    """Fire times of a dbt Cloud cron at or after `start`, in UTC, by cronsim.

    Raises:
        InvalidCron: the expression does not have five fields or cronsim rejects it.
    """
    if len(cron.split()) != 5:
        raise InvalidCron(f"{cron!r} must have five fields (minute hour day-of-month month day-of-week)")
    try:
        # cronsim yields times strictly after its start: step back one second to include `start`.
        sim = CronSim(cron, start.astimezone(UTC) - timedelta(seconds=1))
        return list(islice(sim, count))
    except CronSimError as exc:
        raise InvalidCron(f"{cron!r}: {exc}") from None


def prefect_fire_times(
    spec: PrefectScheduleSpec, start: datetime = PROOF_START, count: int = PROOF_COUNT
) -> list[datetime]:
    """Fire times of a Prefect schedule at or after `start`, computed by Prefect's server schedule code.

    Pure, so remembered per process: a cron's proof and a later check of the same schedule compute them once.

    Raises:
        ValueError: Prefect rejects the expression.
    """
    return list(_prefect_fire_times(spec, start, count))


@functools.lru_cache(maxsize=256)
def _prefect_fire_times(spec: PrefectScheduleSpec, start: datetime, count: int) -> tuple[datetime, ...]:
    from prefect.server.schemas.schedules import CronSchedule, RRuleSchedule

    generator: Iterator[datetime]
    if spec.kind == "cron":
        schedule = CronSchedule(cron=spec.expression, timezone=spec.timezone, day_or=spec.day_or)
        generator = schedule._get_dates_generator(n=count, start=start)
    else:
        rrule_schedule = RRuleSchedule(rrule=spec.expression, timezone=spec.timezone)
        generator = rrule_schedule._get_dates_generator(n=count, start=start)
    return tuple(moment.astimezone(UTC) for moment in islice(generator, count))


def _first_difference(expected: list[datetime], actual: list[datetime]) -> str | None:
    for index, (want, got) in enumerate(zip(expected, actual, strict=False)):
        if want != got:
            return f"fire time #{index + 1}: dbt Cloud {want.isoformat()}, Prefect {got.isoformat()}"
    if len(expected) != len(actual):
        return f"dbt Cloud yields {len(expected)} fire times, Prefect {len(actual)}"
    return None


def _reason(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):  # pydantic's ValidationError: keep its message, drop the docs link
        return "; ".join(str(err["msg"]).removeprefix("Value error, ") for err in errors())
    return str(exc)


def _ordinal_day(item: tuple[int, int]) -> str:
    dow, nth = item
    day = _RRULE_DAYS[dow]
    return f"-1{day}" if nth == CronSim.LAST else f"+{nth}{day}"


def cron_to_rrule(cron: str) -> str:
    """An RRule set with the same fire times as a five-field cron under dbt Cloud's rules.

    Day-of-month and day-of-week become two RRULE lines (a union, cron's OR); when either field starts with `*`
    they share one line (an intersection, Debian cron's AND). `L` → BYMONTHDAY=-1, `5L` → BYDAY=-1FR,
    `MON#2` → BYDAY=+2MO.

    Raises:
        InvalidCron: the cron is invalid or uses a form with no RRule equivalent (`LW`).
    """
    reference_fire_times(cron, count=1)
    sim = CronSim(cron, PROOF_START)
    if CronSim.LAST_WEEKDAY in sim.days:
        raise InvalidCron(f"{cron!r}: 'LW' (last weekday of the month) has no RRule form here")
    common = [
        f"BYMONTH={','.join(str(m) for m in sorted(sim.months))}",
        f"BYHOUR={','.join(str(h) for h in sorted(sim.hours))}",
        f"BYMINUTE={','.join(str(m) for m in sorted(sim.minutes))}",
        "BYSECOND=0",
    ]
    month_days = sorted(-1 if day == CronSim.LAST else day for day in sim.days)
    by_month_day = f"BYMONTHDAY={','.join(str(d) for d in month_days)}"
    plain = sorted({_RRULE_DAYS[d] for d in sim.weekdays if isinstance(d, int)}, key=_RRULE_DAYS.index)
    ordinal = sorted(_ordinal_day(d) for d in sim.weekdays if isinstance(d, tuple))
    by_day = f"BYDAY={','.join([*plain, *ordinal])}"

    def line(*parts: str) -> str:
        return "RRULE:" + ";".join(["FREQ=MONTHLY", *parts, *common])

    rules = [line(by_month_day, by_day)] if sim.day_and else [line(by_month_day), line(by_day)]
    return "\n".join([f"DTSTART:{RRULE_DTSTART}", *rules])


@functools.lru_cache(maxsize=1024)
def translate_cron(cron: str, start: datetime = PROOF_START, count: int = PROOF_COUNT) -> CronTranslation:
    """Find a Prefect schedule whose next `count` fire times equal dbt Cloud's for `cron` (pure, no I/O).

    Pure and immutable, so remembered per process: every plan of an account proves each cron once.
    """
    try:
        expected = reference_fire_times(cron, start, count)
    except InvalidCron as exc:
        return CronTranslation(cron=cron, spec=None, equivalent=False, checked=0, error=str(exc))
    candidates = [PrefectScheduleSpec("cron", cron, day_or=True), PrefectScheduleSpec("cron", cron, day_or=False)]
    with contextlib.suppress(InvalidCron):
        candidates.append(PrefectScheduleSpec("rrule", cron_to_rrule(cron)))
    closest: tuple[PrefectScheduleSpec, str] | None = None
    rejections: list[str] = []
    for spec in candidates:
        try:
            actual = prefect_fire_times(spec, start, count)
        except ValueError as exc:
            # Prefect rejects some valid dbt Cloud forms (e.g. `5L` as a cron); try the next form.
            rejections.append(f"{spec.kind} rejected ({_reason(exc)})")
            continue
        difference = _first_difference(expected, actual)
        if difference is None:
            return CronTranslation(cron=cron, spec=spec, equivalent=True, checked=count)
        closest = closest or (spec, difference)
    if closest is None:
        error = f"{cron!r} has no Prefect form: " + "; ".join(rejections)
        return CronTranslation(cron=cron, spec=None, equivalent=False, checked=0, error=error)
    spec, difference = closest
    return CronTranslation(cron=cron, spec=spec, equivalent=False, checked=count, first_difference=difference)
