"""The cutover ledger: an append-only history of every cutover and rollback, one JSON file per record.

Layout under the tenant's `ledger_url` (a local folder by default, an fsspec URL in production)::

    <ledger_url>/<tenant>/job-<id>/000001-cutover_started.json     full dbt Cloud job + Prefect schedule, before
                                  /000002-cutover_verified.json    both sides read back after the switch
                                  /000003-rollback_started.json    what is restored, from which record
                                  /000004-rollback_verified.json   both sides read back after the restore

A `guard_tripped` record (a failed run in the guarded window after cutover, see `migration.guard`) names the run
and what the guard did; it comes before the rollback it starts and does not change where the job stands.

A record is never rewritten: each one goes to a new sequence number, written only if that name is still free
(`dbt2prefect.object_store.create_new`: a fsynced temporary file linked into place on a local folder, a
conditional create on object storage), so of two operators or two CI pipelines racing for one sequence number
exactly one wins and the other is told to rerun. Readers skip temporary files and list the store afresh, so a
crash at any point leaves either a complete record or none, and a record another machine wrote is seen.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dbt2prefect.files import durable_url_problem, segment_problem
from dbt2prefect.names import job_key, job_key_id
from dbt2prefect.object_store import create_new, open_url
from migration.errors import LedgerDamagedError, LedgerError, LedgerSettingError

CLAIM_EXPIRY_SECONDS = 120.0
"""A sequence claim without its record, older than this, was left by a writer that died between the two writes."""

LEDGER_FORMAT = "dbt2prefect-ledger"
LEDGER_VERSION = 1


class RecordKind(StrEnum):
    """What a ledger record says happened."""

    CUTOVER_STARTED = "cutover_started"
    CUTOVER_VERIFIED = "cutover_verified"
    ROLLBACK_STARTED = "rollback_started"
    ROLLBACK_VERIFIED = "rollback_verified"
    GUARD_TRIPPED = "guard_tripped"


SWITCH_KINDS = frozenset(
    {RecordKind.CUTOVER_STARTED, RecordKind.CUTOVER_VERIFIED, RecordKind.ROLLBACK_STARTED, RecordKind.ROLLBACK_VERIFIED}
)
"""The records of cutovers and rollbacks: the ones that say where a job stands."""


class LedgerState(StrEnum):
    """Where a job stands, derived from its last record."""

    NONE = "none"
    CUTOVER_IN_PROGRESS = "cutover in progress"
    CUT_OVER = "cut over"
    ROLLBACK_IN_PROGRESS = "rollback in progress"
    ROLLED_BACK = "rolled back"


class _LedgerModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PrefectScheduleState(_LedgerModel):
    """One Prefect deployment schedule as read from the API."""

    deployment: str
    deployment_id: str
    schedule_id: str
    slug: str
    active: bool
    parameters: dict[str, Any]
    cron: str | None = None
    rrule: str | None = None
    timezone: str | None = None


class Verification(_LedgerModel):
    """Both sides read back after a cutover or rollback; `problems` is empty when `ok`."""

    ok: bool
    dbt_cloud_schedule_on: bool
    prefect_active: bool | None
    problems: list[str] = Field(default_factory=list)


class LedgerRecord(_LedgerModel):
    """One ledger entry. `original_job` (cutover_started) is the job exactly as GET /jobs/{id}/ returned it."""

    format: Literal["dbt2prefect-ledger"] = "dbt2prefect-ledger"
    version: int = LEDGER_VERSION
    tenant: str

    @field_validator("version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value > LEDGER_VERSION:
            raise ValueError(
                f"version {value} was written by a newer dbt2prefect (this one reads up to {LEDGER_VERSION}); "
                "upgrade dbt2prefect before cutting over or rolling back"
            )
        if value < 1:
            raise ValueError(f"version {value} is not a ledger version")
        return value

    job_id: int
    seq: int
    kind: RecordKind
    operation: str = Field(description="Id shared by the records of one cutover or rollback of this job.")
    at: datetime
    by: str
    forced: bool = False
    reason: str | None = None
    parity: str | None = Field(
        default=None, description="The parity verdict, or the shadow streak, that allowed the cutover."
    )
    original_job: dict[str, Any] | None = None
    dbt_cloud_job: dict[str, Any] | None = Field(
        default=None, description="The job as read when a rollback started (for the audit trail)."
    )
    prefect_schedule: PrefectScheduleState | None = None
    restores: int | None = Field(default=None, description="Seq of the cutover_started record a rollback restores.")
    verification: Verification | None = None
    guard_run: str | None = Field(
        default=None, description="The Prefect flow run whose failure in the guarded window tripped the guard."
    )
    guard_action: Literal["notify", "rollback"] | None = Field(
        default=None, description="What the guard did about it: notified, or also rolled the job back."
    )

    @property
    def file_name(self) -> str:
        return f"{self.seq:06d}-{self.kind.value}.json"


def new_operation_id(kind: str, now: datetime) -> str:
    """An id for one cutover or rollback of one job: readable time plus a random suffix."""
    return f"{kind}-{now.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Ledger:
    """Append-only ledger of one tenant under an fsspec URL (a plain path is a local folder).

    Args:
        url: the tenant's `ledger_url`.
        tenant: the tenant name (one sub-folder per tenant).
    """

    def __init__(self, url: str, tenant: str) -> None:
        self.url = url.rstrip("/")
        self.tenant = tenant
        problem = durable_url_problem(self.url)
        if problem is not None:
            raise LedgerSettingError(f"ledger URL {problem}; set `ledger_url` in the tenant settings")
        bad_name = segment_problem(tenant)
        if bad_name is not None:
            raise LedgerSettingError(f"tenant name {bad_name}")
        try:
            self._fs, root = open_url(self.url)
        except (ValueError, ImportError) as exc:
            raise LedgerSettingError(
                f"ledger URL {url!r} is not usable ({exc}); set `ledger_url` in the tenant settings to a folder "
                "or an fsspec URL such as s3://bucket/ledger"
            ) from None
        self._root = f"{root.rstrip('/')}/{tenant}"

    def __repr__(self) -> str:
        return f"Ledger(url={self.url!r}, tenant={self.tenant!r})"

    def job_dir(self, job_id: int) -> str:
        """Folder of one job's records."""
        return f"{self._root}/{job_key(job_id)}"

    # ----------------------------------------------------------------------------------------- reading

    def job_ids(self) -> list[int]:
        """Every job that has at least one record."""
        try:
            entries = self._fs.ls(self._root, detail=False) if self._fs.exists(self._root) else []
        except OSError as exc:
            raise LedgerError(f"cannot list the ledger {self.url}: {exc}") from None
        ids = []
        for entry in entries:
            name = str(entry).rstrip("/").rsplit("/", 1)[-1]
            job_id = job_key_id(name)
            if job_id is not None:
                ids.append(job_id)
        return sorted(ids)

    def records(self, job_id: int) -> list[LedgerRecord]:
        """All complete records of a job, oldest first (temporary files of interrupted writes are skipped).

        Raises:
            LedgerError: a record file cannot be read or is not a ledger record.
        """
        folder = self.job_dir(job_id)
        try:
            if not self._fs.exists(folder):
                return []
            names = sorted(str(p).rsplit("/", 1)[-1] for p in self._fs.ls(folder, detail=False))
        except OSError as exc:
            raise LedgerError(f"cannot list ledger folder {folder}: {exc}") from None
        out: list[LedgerRecord] = []
        for name in names:
            if name.startswith(".") or not name.endswith(".json"):
                continue
            path = f"{folder}/{name}"
            try:
                with self._fs.open(path, "rb") as handle:
                    record = LedgerRecord.model_validate_json(handle.read())
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                if tuple(err["loc"]) == ("version",) and "newer dbt2prefect" in str(err["msg"]):
                    # Written by a newer toolkit: reading it as this version would misread it.
                    raise LedgerSettingError(
                        f"ledger record {path}: {str(err['msg']).removeprefix('Value error, ')}"
                    ) from None
                first = f"{'.'.join(str(p) for p in err['loc']) or 'record'}: {err['msg']}"
                raise LedgerDamagedError(
                    f"restore the ledger: record {path} is unreadable ({first}); it was written whole, so it was "
                    "edited or damaged afterwards. Restore it from backup before cutting over or rolling back"
                ) from None
            except (OSError, ValueError) as exc:
                first = str(exc).splitlines()[0]
                raise LedgerDamagedError(
                    f"restore the ledger: record {path} is unreadable ({first}); it was written whole, so it was "
                    "edited or damaged afterwards. Restore it from backup before cutting over or rolling back"
                ) from None
            if record.job_id != job_id or record.file_name != name:
                raise LedgerDamagedError(
                    f"restore the ledger: record {path} does not match its file name (job {record.job_id}); "
                    "restore it from backup"
                )
            out.append(record)
        return out

    def state(self, job_id: int, records: list[LedgerRecord] | None = None) -> LedgerState:
        """Where the job stands: none, cutover in progress, cut over, rollback in progress, rolled back."""
        history = [r for r in (self.records(job_id) if records is None else records) if r.kind in SWITCH_KINDS]
        if not history:
            return LedgerState.NONE
        last = history[-1]
        if last.kind == RecordKind.CUTOVER_STARTED:
            return LedgerState.CUTOVER_IN_PROGRESS
        if last.kind == RecordKind.CUTOVER_VERIFIED:
            ok = last.verification is not None and last.verification.ok
            return LedgerState.CUT_OVER if ok else LedgerState.CUTOVER_IN_PROGRESS
        if last.kind == RecordKind.ROLLBACK_STARTED:
            return LedgerState.ROLLBACK_IN_PROGRESS
        ok = last.verification is not None and last.verification.ok
        return LedgerState.ROLLED_BACK if ok else LedgerState.ROLLBACK_IN_PROGRESS

    @staticmethod
    def last_of(records: list[LedgerRecord], kind: RecordKind) -> LedgerRecord | None:
        """The newest record of a kind."""
        return next((r for r in reversed(records) if r.kind == kind), None)

    # ----------------------------------------------------------------------------------------- writing

    def append(self, record: LedgerRecord) -> LedgerRecord:
        """Write a new record with the next sequence number of its job (the given `seq` is replaced).

        Raises:
            LedgerError: the write failed, or another writer took the sequence number first.
        """
        existing = self.records(record.job_id)
        folder = self.job_dir(record.job_id)
        seq = self._claim(folder, (existing[-1].seq if existing else 0) + 1, record)
        stored = record.model_copy(update={"seq": seq})
        data = (stored.model_dump_json(indent=2) + "\n").encode("utf-8")
        path = f"{folder}/{stored.file_name}"
        try:
            create_new(self._fs, path, data)
        except FileExistsError:
            raise self._busy(path, record.job_id) from None
        except OSError as exc:
            raise LedgerError(
                f"cannot write ledger record {path}: {exc}; check `ledger_url` and its permissions"
            ) from None
        return stored

    def _claim(self, folder: str, seq: int, record: LedgerRecord) -> int:
        """Take sequence number `seq` of a job by a create-only claim; return the number taken.

        Record names carry their kind, so two writers could both write `seq` under different names: the claim
        (`.claim-<seq>`, one name whatever the kind) lets exactly one of them have it. A claim with no record
        that is older than `CLAIM_EXPIRY_SECONDS` was left by a writer that died in between: it is skipped.

        Raises:
            LedgerError: another writer holds the number (a cutover or rollback of the job is running).
        """
        body = json.dumps({"at": utcnow().isoformat(), "kind": record.kind.value, "by": record.by}).encode()
        while True:
            claim = f"{folder}/.claim-{seq:06d}"
            try:
                create_new(self._fs, claim, body)
                return seq
            except FileExistsError:
                if self._claim_age(claim) < CLAIM_EXPIRY_SECONDS:
                    raise self._busy(claim, record.job_id) from None
                seq += 1
            except OSError as exc:
                raise LedgerError(
                    f"cannot write ledger claim {claim}: {exc}; check `ledger_url` and its permissions"
                ) from None

    def _claim_age(self, claim: str) -> float:
        try:
            at = datetime.fromisoformat(json.loads(self._fs.cat_file(claim))["at"])
        except FileNotFoundError:
            return 0.0
        except (OSError, ValueError, KeyError, TypeError):
            return CLAIM_EXPIRY_SECONDS  # unreadable: its writer died while writing it
        return (utcnow() - at).total_seconds()

    @staticmethod
    def _busy(path: str, job_id: int) -> LedgerError:
        return LedgerError(
            f"ledger record {path} already exists: another cutover or rollback of job {job_id} is running; "
            "wait for it and rerun"
        )


def record_json(record: LedgerRecord) -> dict[str, Any]:
    """A record as JSON-ready data."""
    data: dict[str, Any] = json.loads(record.model_dump_json())
    return data
