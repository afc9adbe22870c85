"""The parallel-run period: one record per compared (job, dbt Cloud run) pair, and each job's readiness.

Every completed dbt Cloud run of a job in shadow gets a Prefect twin (a run of the same parameters on the parity
target) and a parity comparison of exactly that pair. Each comparison is kept under the parity report root:

    shadow/<job id>/<dbt Cloud run id>.json                       the pair record, created once, never replaced
    shadow/<job id>/<dbt Cloud run id>/<flow run id>/report.*     the pair's parity report (json, md, html)
    shadow/<job id>/heard/<dbt Cloud run id>                      an empty marker: a successful run heard of,
                                                                  sampled or not (see `ShadowStore.hear`)
    shadow/<job id>/pairs.index.json                              every record of the job in one file, so
                                                                  readiness reads one object, not one per pair

The record is written with a create-only write (`dbt2prefect.object_store.create_new`), so a dbt Cloud run is
recorded once even when its event arrives twice or two workers compare it at once. The report folder is named by
both runs, so a second twin of the same dbt Cloud run never overwrites the report a record points to.

The index is a cache of the records, never their authority. Recording a pair adds it with a compare-and-swap
(`dbt2prefect.object_store.versioned_file`), retried, so two writers cannot lose each other's pair. Reading the
pairs lists the job's folder, takes from the index every record it holds at the listed size, and reads only the
records it lacks (a missing or damaged index, a crash between the record and its index update, a record deleted
and written again); those are then added to the index, so the next read is one listing and one object again.

Readiness is read from the records: the streak of consecutive PASS pairs (ordered by the dbt Cloud runs' finish
times), the days it covers (first pair of the streak to the last), the last FAIL and why, and the extra warehouse
time the twins spent (their durations) per job and per day. `ShadowGate` turns it into cutover's gate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dbt2prefect.errors import ArtifactStoreError, ParameterError
from dbt2prefect.escaping import markdown_cell
from dbt2prefect.files import segment_problem
from dbt2prefect.object_store import VersionedFile, create_new, versioned_file
from dbt2prefect.tenant import ShadowSettings
from parity.model import JobParity, ParityReport, Verdict
from parity.store import ReportRoot, ReportStoreError, write_report_files

SHADOW = "shadow"
HEARD = "heard"
INDEX = "pairs.index.json"
MAX_SWAPS = 50
"""Attempts at adding to a job's index before leaving it to the next read (each loses only to another writer)."""
MAX_REASONS = 3
"""A FAIL pair keeps its first few reasons; the report it points to has them all."""
MAX_MESSAGE = 240


class PairReason(BaseModel):
    """One error finding of a FAIL pair: its reason code, what it is about, and the first words of its message."""

    model_config = ConfigDict(frozen=True)

    reason: str
    subject: str = ""
    message: str = ""

    def text(self) -> str:
        return f"{self.reason} ({self.subject}): {self.message}" if self.subject else f"{self.reason}: {self.message}"


class ShadowPair(BaseModel):
    """The record of one dbt Cloud run compared with its Prefect twin."""

    model_config = ConfigDict(frozen=True)

    tenant: str
    job_id: int
    job_name: str = ""
    dbt_cloud_run_id: int
    prefect_run_id: str
    verdict: Verdict
    compared_at: datetime
    dbt_cloud_started_at: datetime | None = None
    dbt_cloud_finished_at: datetime | None = None
    prefect_started_at: datetime | None = None
    prefect_finished_at: datetime | None = None
    report: str | None = Field(default=None, description="Where the pair's report.json is (no credentials).")
    reasons: list[PairReason] = Field(default_factory=list, description="A FAIL's first reasons.")

    @property
    def at(self) -> datetime:
        """When the pair happened, for ordering: the dbt Cloud run's finish (the comparison's time if unknown)."""
        return self.dbt_cloud_finished_at or self.compared_at

    @property
    def warehouse_seconds(self) -> float:
        """The Prefect twin's duration: the warehouse time shadowing this run added (0 when unknown)."""
        if self.prefect_started_at is None or self.prefect_finished_at is None:
            return 0.0
        return max(0.0, (self.prefect_finished_at - self.prefect_started_at).total_seconds())


def _reason(reason: str, subject: str, message: str) -> PairReason:
    short = " ".join(message.split())
    if len(short) > MAX_MESSAGE:
        short = short[: MAX_MESSAGE - 1] + "…"
    return PairReason(reason=reason, subject=subject, message=short)


def compared_pair(
    tenant: str,
    job: JobParity,
    *,
    dbt_cloud_run_id: int,
    dbt_cloud_started_at: datetime | None,
    dbt_cloud_finished_at: datetime | None,
    report: str | None,
    compared_at: datetime,
) -> ShadowPair:
    """The record of a comparison: its verdict, both runs' times and, for a FAIL, its first error findings."""
    reasons = [_reason(f.reason, f.subject, f.message) for f in job.errors()[:MAX_REASONS]]
    if job.verdict is Verdict.FAIL and not reasons:
        reasons = [_reason("parity_failed", "", "the comparison failed; see the report")]
    return ShadowPair(
        tenant=tenant,
        job_id=job.job_id,
        job_name=job.job_name,
        dbt_cloud_run_id=dbt_cloud_run_id,
        prefect_run_id=job.candidate.run_id,
        verdict=job.verdict,
        compared_at=compared_at,
        dbt_cloud_started_at=dbt_cloud_started_at,
        dbt_cloud_finished_at=dbt_cloud_finished_at,
        prefect_started_at=job.candidate.started_at,
        prefect_finished_at=job.candidate.finished_at,
        report=report,
        reasons=reasons if job.verdict is Verdict.FAIL else [],
    )


def unusable_twin_pair(
    tenant: str,
    job_id: int,
    job_name: str,
    *,
    dbt_cloud_run_id: int,
    dbt_cloud_started_at: datetime | None,
    dbt_cloud_finished_at: datetime | None,
    prefect_run_id: str,
    problem: str,
    compared_at: datetime,
) -> ShadowPair:
    """A FAIL pair for a twin that left nothing to compare (it crashed, or stored no artifacts): the Prefect side
    did not do what dbt Cloud did, which is evidence against cutover, not the absence of evidence."""
    return ShadowPair(
        tenant=tenant,
        job_id=job_id,
        job_name=job_name,
        dbt_cloud_run_id=dbt_cloud_run_id,
        prefect_run_id=prefect_run_id,
        verdict=Verdict.FAIL,
        compared_at=compared_at,
        dbt_cloud_started_at=dbt_cloud_started_at,
        dbt_cloud_finished_at=dbt_cloud_finished_at,
        reasons=[_reason("candidate_unusable", prefect_run_id, problem)],
    )


class IndexedRecord(BaseModel):
    """A pair record as the index holds it: the record's size in bytes (as listed) and its content."""

    model_config = ConfigDict(frozen=True)

    size: int
    pair: ShadowPair


class PairIndex(BaseModel):
    """`shadow/<job id>/pairs.index.json`: a job's pair records by dbt Cloud run id (see the module docstring)."""

    version: Literal[1] = 1
    records: dict[int, IndexedRecord] = Field(default_factory=dict)


def _index_of(data: bytes | None) -> dict[int, IndexedRecord]:
    """The records of an index file; none when it is missing or damaged (it is then rebuilt from the records)."""
    if data is None:
        return {}
    try:
        return PairIndex.model_validate_json(data).records
    except ValidationError:
        return {}


def check_flow_run_id(value: str) -> str:
    """A Prefect flow-run id that can name a folder.

    Raises:
        ParameterError: it cannot.
    """
    problem = segment_problem(value)
    if problem is not None:
        raise ParameterError(f"Prefect flow run id {problem}; pass the twin's flow-run id (a UUID)")
    return value


class ShadowStore:
    """Pair records and their reports under a parity report root (see the module docstring for the layout)."""

    def __init__(self, root: ReportRoot) -> None:
        self.root = root

    @staticmethod
    def _record(job_id: int, dbt_cloud_run_id: int) -> str:
        return f"{SHADOW}/{job_id}/{dbt_cloud_run_id}.json"

    @staticmethod
    def report_folder(job_id: int, dbt_cloud_run_id: int, prefect_run_id: str) -> str:
        """The folder (relative to the root) of the pair's report."""
        return f"{SHADOW}/{job_id}/{dbt_cloud_run_id}/{check_flow_run_id(prefect_run_id)}"

    def _parse(self, relative: str, data: bytes) -> ShadowPair:
        try:
            return ShadowPair.model_validate_json(data)
        except ValidationError as exc:
            raise ReportStoreError(
                f"shadow pair record {self.root.where(relative)} is unreadable ({str(exc).splitlines()[0]}); it is "
                "written whole once, so it was changed since: restore it from the bucket's versions, or delete it "
                "and compare that dbt Cloud run again"
            ) from None

    def get(self, job_id: int, dbt_cloud_run_id: int) -> ShadowPair | None:
        """The record of the pair, or None when that dbt Cloud run of the job was not compared yet.

        Raises:
            ReportStoreError: the record cannot be read.
        """
        relative = self._record(job_id, dbt_cloud_run_id)
        try:
            data = self.root.read_bytes(relative)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ReportStoreError(f"could not read {self.root.where(relative)}: {exc}") from None
        return self._parse(relative, data)

    def write_report(self, report: ParityReport, job_id: int, dbt_cloud_run_id: int, prefect_run_id: str) -> str:
        """Write the pair's parity report; returns where its report.json is (no credentials)."""
        folder = self.report_folder(job_id, dbt_cloud_run_id, prefect_run_id)
        write_report_files(report, self.root, folder)
        return self.root.where(f"{folder}/report.json")

    def record(self, pair: ShadowPair) -> bool:
        """Create the pair's record; False (nothing written) when that dbt Cloud run of the job is recorded already.

        Raises:
            ReportStoreError: the record could not be written.
        """
        relative = self._record(pair.job_id, pair.dbt_cloud_run_id)
        data = pair.model_dump_json(indent=2).encode("utf-8")
        try:
            create_new(self.root.fs, self.root.path(relative), data)
        except FileExistsError:
            return False
        except OSError as exc:
            raise ReportStoreError(
                f"could not write {self.root.where(relative)}: {exc}; check the parity report root's permissions"
            ) from None
        # The record is the evidence; an index update that does not happen is made by the next read.
        self._remember(pair.job_id, {pair.dbt_cloud_run_id: IndexedRecord(size=len(data), pair=pair)})
        return True

    def _index_file(self, job_id: int) -> VersionedFile:
        return versioned_file(self.root.fs, self.root.path(f"{SHADOW}/{job_id}/{INDEX}"), self.root.swap)

    def _remember(self, job_id: int, records: Mapping[int, IndexedRecord]) -> bool:
        """Add records to the job's index (compare-and-swap, retried); False when it could not (the records stay
        the authority, and the next read adds what the index lacks)."""
        try:
            index_file = self._index_file(job_id)
            for _ in range(MAX_SWAPS):
                current = index_file.read()
                index = _index_of(current.data)
                if all(index.get(run_id) == record for run_id, record in records.items()):
                    return True
                index.update(records)
                if index_file.replace(PairIndex(records=index).model_dump_json().encode("utf-8"), current.version):
                    return True
        except (OSError, ArtifactStoreError):
            pass
        return False

    def hear(self, job_id: int, dbt_cloud_run_id: int) -> int:
        """Note a successful dbt Cloud run of the job as heard of; returns its place among the job's heard runs,
        ordered by run id (dbt Cloud's ids grow with time), 1 for the first: the `seen` of `ShadowSettings.takes`.
        Hearing a run again writes nothing and gives the same place, so a repeated event is sampled alike.

        Raises:
            ReportStoreError: the marker could not be written or the markers listed.
        """
        folder = f"{SHADOW}/{job_id}/{HEARD}"
        relative = f"{folder}/{dbt_cloud_run_id}"
        try:
            create_new(self.root.fs, self.root.path(relative), b"")
        except FileExistsError:
            pass
        except OSError as exc:
            raise ReportStoreError(
                f"could not write {self.root.where(relative)}: {exc}; check the parity report root's permissions"
            ) from None
        names = (str(entry["name"]).rstrip("/").rsplit("/", 1)[-1] for entry in self._list(folder))
        heard = {int(name) for name in names if name.isdigit()} | {dbt_cloud_run_id}
        return sorted(heard).index(dbt_cloud_run_id) + 1

    def _list(self, relative: str) -> list[dict[str, Any]]:
        try:
            return list(self.root.fs.ls(self.root.path(relative), detail=True))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ReportStoreError(f"could not list {self.root.where(relative)}: {exc}") from None

    def job_ids(self) -> list[int]:
        """The jobs with at least one pair folder."""
        names = (str(entry["name"]).rstrip("/").rsplit("/", 1)[-1] for entry in self._list(SHADOW))
        return sorted(int(name) for name in names if name.isdigit())

    def _listed(self, job_id: int) -> dict[int, tuple[str, int | None]]:
        """The job's pair records as listed: dbt Cloud run id -> (path, size in bytes)."""
        listed: dict[int, tuple[str, int | None]] = {}
        for entry in self._list(f"{SHADOW}/{job_id}"):
            name = str(entry["name"])
            stem = name.rsplit("/", 1)[-1].removesuffix(".json")
            if entry.get("type") == "file" and name.endswith(".json") and stem.isdigit():
                size = entry.get("size")
                listed[int(stem)] = (name, int(size) if isinstance(size, int) else None)
        return listed

    def _read_records(self, job_id: int, files: Mapping[int, str]) -> dict[int, IndexedRecord]:
        """Read records in one batched read (object stores fetch the files concurrently)."""
        if not files:
            return {}
        paths = list(files.values())
        try:
            contents = self.root.fs.cat(paths)
        except OSError as exc:
            where = self.root.where(f"{SHADOW}/{job_id}")
            raise ReportStoreError(f"could not read the pairs under {where}: {exc}") from None
        if isinstance(contents, bytes):  # a single path may come back as its bytes
            contents = {paths[0]: contents}
        base = self.root.base.rstrip("/") + "/"
        found = {}
        for run_id, path in files.items():
            data = bytes(contents[path])
            found[run_id] = IndexedRecord(size=len(data), pair=self._parse(path.removeprefix(base), data))
        return found

    def _indexed(self, job_id: int) -> dict[int, IndexedRecord]:
        relative = f"{SHADOW}/{job_id}/{INDEX}"
        try:
            return _index_of(self.root.read_bytes(relative))
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ReportStoreError(f"could not read {self.root.where(relative)}: {exc}") from None

    def pairs(self, job_id: int) -> list[ShadowPair]:
        """Every recorded pair of the job, oldest first (by the dbt Cloud run's finish time): one listing and the
        job's index, plus the records the index lacks (which are then added to it).

        Raises:
            ReportStoreError: the folder cannot be listed or a record read.
        """
        listed = self._listed(job_id)
        if not listed:
            return []
        index = self._indexed(job_id)
        known = {
            run_id: index[run_id].pair
            for run_id, (_, size) in listed.items()
            if run_id in index and index[run_id].size == size
        }
        fresh = self._read_records(
            job_id, {run_id: path for run_id, (path, _) in listed.items() if run_id not in known}
        )
        if fresh:
            self._remember(job_id, fresh)
            known.update((run_id, record.pair) for run_id, record in fresh.items())
        return sorted(known.values(), key=lambda pair: (pair.at, pair.dbt_cloud_run_id))


# ------------------------------------------------------------------------------------------------ readiness


class StreakPoint(BaseModel):
    """One pair in a job's history, with the streak it left."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    dbt_cloud_run_id: int
    verdict: Verdict
    streak: int


class JobReadiness(BaseModel):
    """How far a job is in its parallel-run period, from its pair records."""

    model_config = ConfigDict(frozen=True)

    job_id: int
    job_name: str = ""
    required_passes: int
    required_days: float
    pairs: int = 0
    passes: int = 0
    streak: int = Field(default=0, description="Consecutive PASS pairs up to the newest pair.")
    streak_days: float = Field(default=0.0, description="Days from the streak's first pair to its last.")
    streak_since: ShadowPair | None = None
    last_pair: ShadowPair | None = None
    last_fail: ShadowPair | None = None
    warehouse_seconds: float = Field(default=0.0, description="The twins' durations, all pairs together.")
    warehouse_seconds_by_day: dict[str, float] = Field(
        default_factory=dict, description="The twins' durations per UTC day of the dbt Cloud run (YYYY-MM-DD)."
    )
    history: list[StreakPoint] = Field(default_factory=list)

    @property
    def ready(self) -> bool:
        """K consecutive PASS pairs over at least D days."""
        return self.streak >= self.required_passes and self.streak_days >= self.required_days

    def summary(self) -> str:
        """E.g. '2/3 PASS, 0.4/1 days'."""
        return f"{self.streak}/{self.required_passes} PASS, {_days(self.streak_days)}/{self.required_days:g} days"

    def last_fail_text(self) -> str | None:
        """The last FAIL pair: which dbt Cloud run, when, and its first reason."""
        fail = self.last_fail
        if fail is None:
            return None
        why = fail.reasons[0].text() if fail.reasons else "see its report"
        return f"dbt Cloud run {fail.dbt_cloud_run_id} ({fail.at:%Y-%m-%d %H:%M} UTC): {why}"

    def missing(self) -> str | None:
        """What the job lacks before cutover, in words; None when it is ready."""
        if self.ready:
            return None
        if self.pairs == 0:
            return "has no shadow pair yet: no dbt Cloud run of it has been compared with a Prefect twin"
        lacks = []
        if self.streak < self.required_passes:
            lacks.append(f"{self.required_passes - self.streak} more consecutive PASS pair(s)")
        if self.streak_days < self.required_days:
            lacks.append(f"the streak to cover {_days(self.required_days - self.streak_days)} more day(s)")
        since = self.streak_since
        start = "" if since is None else f" since dbt Cloud run {since.dbt_cloud_run_id} ({since.at:%Y-%m-%d %H:%M})"
        text = (
            f"shadow streak {self.streak} of {self.required_passes} consecutive PASS pairs over "
            f"{_days(self.streak_days)} of {self.required_days:g} days{start}; needs {' and '.join(lacks)}"
        )
        fail = self.last_fail_text()
        return text + (f"; last FAIL: {fail}" if fail else "")

    def evidence(self) -> str:
        """One line for the ledger: the streak that allowed the cutover."""
        last = self.last_pair
        tail = "" if last is None else f", last pair dbt Cloud run {last.dbt_cloud_run_id} at {last.at.isoformat()}"
        return f"shadow {self.summary()} ({self.pairs} pairs{tail})"


def _days(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0") if value < 10 else f"{value:.0f}"


def readiness(job_id: int, pairs: Sequence[ShadowPair], settings: ShadowSettings) -> JobReadiness:
    """A job's readiness from its pairs (any order)."""
    ordered = sorted(pairs, key=lambda pair: (pair.at, pair.dbt_cloud_run_id))
    streak: list[ShadowPair] = []
    last_fail = None
    history = []
    by_day: dict[str, float] = {}
    for pair in ordered:
        if pair.verdict is Verdict.PASS:
            streak.append(pair)
        else:
            streak, last_fail = [], pair
        history.append(
            StreakPoint(at=pair.at, dbt_cloud_run_id=pair.dbt_cloud_run_id, verdict=pair.verdict, streak=len(streak))
        )
        day = f"{pair.at:%Y-%m-%d}"
        by_day[day] = by_day.get(day, 0.0) + pair.warehouse_seconds
    days = (streak[-1].at - streak[0].at).total_seconds() / 86400 if streak else 0.0
    return JobReadiness(
        job_id=job_id,
        job_name=next((pair.job_name for pair in reversed(ordered) if pair.job_name), ""),
        required_passes=settings.required_passes,
        required_days=settings.required_days,
        pairs=len(ordered),
        passes=sum(1 for pair in ordered if pair.verdict is Verdict.PASS),
        streak=len(streak),
        streak_days=days,
        streak_since=streak[0] if streak else None,
        last_pair=ordered[-1] if ordered else None,
        last_fail=last_fail,
        warehouse_seconds=sum(by_day.values()),
        warehouse_seconds_by_day=by_day,
        history=history,
    )


def read_readiness(
    store: ShadowStore, settings: ShadowSettings, job_ids: Iterable[int] | None = None
) -> dict[int, JobReadiness]:
    """Readiness of the given jobs (default: every job with pairs, and every job the settings name)."""
    wanted = set(job_ids) if job_ids is not None else set(store.job_ids()) | set(settings.jobs or ())
    return {job_id: readiness(job_id, store.pairs(job_id), settings) for job_id in sorted(wanted)}


@dataclass(frozen=True)
class ShadowGate:
    """Cutover's gate for jobs in the parallel-run period.

    It applies to a job that has pairs (they are newer evidence than a one-off parity run, and a FAIL among them
    must not be outvoted by an older PASS verdict) and, with `required = true`, to every shadowed job; any other
    job keeps the parity-verdict gate.
    """

    settings: ShadowSettings
    readiness: Mapping[int, JobReadiness]

    def applies(self, job_id: int) -> bool:
        found = self.readiness.get(job_id)
        return (found is not None and found.pairs > 0) or (self.settings.required and self.settings.shadows(job_id))

    def of(self, job_id: int) -> JobReadiness:
        found = self.readiness.get(job_id)
        if found is not None:
            return found
        return JobReadiness(
            job_id=job_id, required_passes=self.settings.required_passes, required_days=self.settings.required_days
        )

    def problem(self, job_id: int) -> str | None:
        """Why the job may not be cut over yet, or None."""
        missing = self.of(job_id).missing()
        if missing is None:
            return None
        if self.of(job_id).pairs == 0:
            return f"{missing} ([tenant.shadow] required = true); let its dbt Cloud runs get their twins"
        return missing


# ------------------------------------------------------------------------------------------------ rendering


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 360 else f"{seconds:.0f} s"


def readiness_markdown(jobs: Sequence[JobReadiness]) -> str:
    """The readiness table as Markdown (a Prefect markdown artifact): one row per job, then the extra warehouse
    time per day."""
    lines = [
        "# Shadow readiness",
        "",
        "| job | streak | days | ready | pairs | last FAIL | extra warehouse time |",
        "|---|---|---|---|---|---|---|",
    ]
    for job in jobs:
        cells = [
            f"{job.job_id} {job.job_name}".strip(),
            f"{job.streak}/{job.required_passes}",
            f"{_days(job.streak_days)}/{job.required_days:g}",
            "yes" if job.ready else "no",
            f"{job.passes} PASS of {job.pairs}",
            job.last_fail_text() or "-",
            _hours(job.warehouse_seconds),
        ]
        lines.append("| " + " | ".join(markdown_cell(cell) for cell in cells) + " |")
    days: dict[str, float] = {}
    for job in jobs:
        for day, seconds in job.warehouse_seconds_by_day.items():
            days[day] = days.get(day, 0.0) + seconds
    if days:
        lines += ["", "Extra warehouse time (the Prefect twins' durations) per day:", "", "| day | time |", "|---|---|"]
        lines += [f"| {day} | {_hours(seconds)} |" for day, seconds in sorted(days.items())]
    return "\n".join(lines) + "\n"


_PASS, _FAIL, _GOAL = "#2e8540", "#b3261e", "#55607a"


def streak_svg(job: JobReadiness, width: int = 640, height: int = 90) -> str:
    """The job's streak over time: one bar per pair, as tall as the streak it left (a FAIL is a red mark at zero),
    and a dashed line at K."""
    top = max([job.required_passes, *(point.streak for point in job.history)])
    count = max(len(job.history), 1)
    step = width / count
    scale = (height - 24) / top
    base = height - 4
    parts = []
    for index, point in enumerate(job.history):
        x = index * step
        bar = max(point.streak * scale, 3)
        colour = _PASS if point.verdict is Verdict.PASS else _FAIL
        label = f"dbt Cloud run {point.dbt_cloud_run_id} {point.at:%Y-%m-%d %H:%M}: {point.verdict.value}, streak {point.streak}"
        parts.append(
            f'<rect x="{x:.1f}" y="{base - bar:.1f}" width="{max(step - 2, 1):.1f}" height="{bar:.1f}" '
            f'fill="{colour}"><title>{escape(label)}</title></rect>'
        )
    goal = base - job.required_passes * scale
    parts.append(f'<line x1="0" x2="{width}" y1="{goal:.1f}" y2="{goal:.1f}" stroke="{_GOAL}" stroke-dasharray="4 3"/>')
    title = f"Job {job.job_id} {job.job_name}: streak {job.summary()}"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{escape(title)}</title>' + "".join(parts) + "</svg>"
    )


def readiness_html(jobs: Sequence[JobReadiness]) -> str:
    """A standalone page (inline CSS and SVG, no scripts): per job its readiness and its streak over time."""
    body = ["<h1>Shadow readiness</h1>"]
    for job in jobs:
        state = "ready" if job.ready else "not ready"
        body.append(f"<h2>Job {job.job_id} {escape(job.job_name)}: {escape(job.summary())}, {state}</h2>")
        details = f"{job.passes} PASS of {job.pairs} pairs; extra warehouse time {_hours(job.warehouse_seconds)}"
        fail = job.last_fail_text()
        body.append(f"<p>{escape(details)}{escape(f'; last FAIL: {fail}') if fail else ''}</p>")
        body.append(streak_svg(job))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Shadow readiness</title>'
        "<style>body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#1d2433;max-width:1200px}"
        "svg{display:block;margin:.5rem 0 1rem}</style></head><body>" + "".join(body) + "</body></html>\n"
    )
