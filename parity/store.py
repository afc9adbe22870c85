"""Report files on disk: `<root>/<timestamp>/report.{json,md,html}` plus `<root>/latest.json`.

`latest.json` keeps the latest verdict of every job ever compared (a later report that covers other jobs
does not erase a job's earlier verdict), so cutover can gate each job on its own latest parity result.
All files are written to a temporary name and renamed, so readers never see half a file.

`latest.json` is updated by compare-and-swap: read it with its version, merge, write only if nobody wrote
since, else read again and retry. A job's entry is replaced only by a verdict of a newer report, so two reports
written at once keep both jobs and the newer verdict of a job both cover, whichever finishes last. The swap
goes through `VersionedFile`, two calls that map onto object storage's conditional writes (S3 `PutObject`
with `If-Match: <ETag>`, or `If-None-Match: *` to create); on a local folder `LocalVersionedFile` holds a lock
file (created with O_CREAT|O_EXCL, broken once older than its expiry) around the version check and the rename.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ValidationError

from dbt2prefect.files import write_text_atomic
from parity.errors import ParityError
from parity.model import ParityReport, Verdict
from parity.render import report_html, report_markdown

DEFAULT_REPORT_ROOT = Path(".dbt2prefect/parity")
LATEST = "latest.json"


class ReportStoreError(ParityError):
    """The report folder could not be written or its latest.json read."""


class JobVerdict(BaseModel):
    verdict: Verdict
    time: datetime
    report: str


class LatestPointer(BaseModel):
    """Content of latest.json."""

    report: str
    verdict: Verdict
    time: datetime
    jobs: dict[int, JobVerdict]


@dataclass(frozen=True)
class Versioned:
    """A file's content (None when absent) and its version tag (an ETag; None when absent)."""

    data: bytes | None
    version: str | None


class VersionedFile(Protocol):
    """One small file replaced only when unchanged since it was read (compare-and-swap)."""

    def read(self) -> Versioned: ...

    def replace(self, data: bytes, expected: str | None) -> bool:
        """Write `data` if the file's version is still `expected` (None: the file must not exist yet).

        Returns:
            False, writing nothing, when another writer changed the file since.
        """
        ...


LOCK_EXPIRY_SECONDS = 30.0
"""A lock file older than this is a crashed writer's: it is broken (a swap holds it for milliseconds)."""
LOCK_WAIT_SECONDS = 10.0


def _version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class LocalVersionedFile:
    """`VersionedFile` on a local folder: a lock file `<name>.lock` around the version check and the rename."""

    def __init__(self, path: Path, expiry: float = LOCK_EXPIRY_SECONDS, wait: float = LOCK_WAIT_SECONDS) -> None:
        self.path = Path(path)
        self.lock = self.path.with_name(self.path.name + ".lock")
        self.expiry, self.wait = expiry, wait

    def read(self) -> Versioned:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return Versioned(None, None)
        return Versioned(data, _version(data))

    def _acquire(self) -> None:
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    if time.time() - self.lock.stat().st_mtime > self.expiry:
                        self.lock.unlink(missing_ok=True)  # left by a writer that died holding it
                        continue
                except FileNotFoundError:
                    continue  # released meanwhile
                if time.monotonic() > deadline:
                    raise ReportStoreError(
                        f"{self.lock} has been held for more than {self.wait:.0f} s by another parity report; "
                        f"rerun, or delete it if no parity report is being written (it expires after "
                        f"{self.expiry:.0f} s)"
                    ) from None
                time.sleep(0.005)
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(str(os.getpid()))
            return

    def replace(self, data: bytes, expected: str | None) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._acquire()
        try:
            if self.read().version != expected:
                return False
            write_text_atomic(self.path, data.decode("utf-8"))
            return True
        finally:
            self.lock.unlink(missing_ok=True)


SWAP_ATTEMPTS = 50


def _atomic_write(path: Path, text: str) -> None:
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        raise ReportStoreError(f"could not write {path}: {exc}; pass a writable --report-dir") from None


def _parse_latest(path: Path, data: bytes | None) -> LatestPointer | None:
    if data is None:
        return None
    try:
        return LatestPointer.model_validate_json(data)
    except ValidationError as exc:
        raise ReportStoreError(
            f"{path} is unreadable ({str(exc).splitlines()[0]}); delete it and rerun parity"
        ) from None


def _read_latest(root: Path) -> LatestPointer | None:
    path = root / LATEST
    try:
        return _parse_latest(path, LocalVersionedFile(path).read().data)
    except OSError as exc:
        raise ReportStoreError(f"{path} is unreadable ({exc}); delete it and rerun parity") from None


def merge_latest(previous: LatestPointer | None, report: ParityReport, relative: str) -> LatestPointer:
    """`previous` with the report's verdicts: a job's entry (and the pointer's head) moves only to a newer report."""
    jobs = dict(previous.jobs) if previous else {}
    for job in report.jobs:
        known = jobs.get(job.job_id)
        if known is None or known.time <= report.created_at:
            jobs[job.job_id] = JobVerdict(verdict=job.verdict, time=report.created_at, report=relative)
    if previous is not None and previous.time > report.created_at:
        return LatestPointer(report=previous.report, verdict=previous.verdict, time=previous.time, jobs=jobs)
    return LatestPointer(report=relative, verdict=report.verdict, time=report.created_at, jobs=jobs)


def update_latest(pointer_file: VersionedFile, report: ParityReport, relative: str, where: str) -> LatestPointer:
    """Merge the report into latest.json by compare-and-swap; retried while other writers get there first."""
    for _ in range(SWAP_ATTEMPTS):
        current = pointer_file.read()
        merged = merge_latest(_parse_latest(Path(where), current.data), report, relative)
        if pointer_file.replace(merged.model_dump_json(indent=2).encode(), current.version):
            return merged
    raise ReportStoreError(
        f"{where} changed under every one of {SWAP_ATTEMPTS} attempts to record this report; rerun parity "
        "(its report folder is written)"
    )


def write_report(report: ParityReport, root: Path = DEFAULT_REPORT_ROOT) -> Path:
    """Write report.json, report.md and report.html in a new timestamped folder; update latest.json.

    Returns:
        The folder written.
    """
    stamp = report.created_at.strftime("%Y%m%dT%H%M%S%fZ")
    folder = root / stamp
    _atomic_write(folder / "report.json", report.model_dump_json(indent=2))
    _atomic_write(folder / "report.md", report_markdown(report))
    _atomic_write(folder / "report.html", report_html(report))
    try:
        update_latest(LocalVersionedFile(root / LATEST), report, f"{stamp}/report.json", str(root / LATEST))
    except OSError as exc:
        raise ReportStoreError(f"could not write {root / LATEST}: {exc}; pass a writable --report-dir") from None
    return folder


def load_latest_verdicts(report_root: Path = DEFAULT_REPORT_ROOT) -> dict[int, tuple[Verdict, datetime]]:
    """The latest parity verdict and its time for every job ever compared under `report_root`."""
    pointer = _read_latest(Path(report_root))
    if pointer is None:
        return {}
    return {job_id: (entry.verdict, entry.time) for job_id, entry in pointer.jobs.items()}


def load_latest_report(report_root: Path = DEFAULT_REPORT_ROOT) -> ParityReport | None:
    """The most recently written report, or None when there is none."""
    root = Path(report_root)
    pointer = _read_latest(root)
    if pointer is None:
        return None
    path = root / pointer.report
    try:
        return ParityReport.model_validate_json(path.read_bytes())
    except (OSError, ValidationError) as exc:
        raise ReportStoreError(f"{path} is unreadable: {str(exc).splitlines()[0]}") from None


def report_json(report: ParityReport) -> str:
    """The report as JSON text (round-trips through `ParityReport.model_validate_json`)."""
    return json.dumps(report.model_dump(mode="json"), indent=2)
