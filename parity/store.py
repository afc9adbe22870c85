"""Report files under a folder or an fsspec URL: `<root>/<timestamp>/report.{json,md,html}` plus `<root>/latest.json`.

In production the root is in the tenant's object store (the parity flow writes there from a worker's throw-away
container; cutover reads it from an operator's laptop or CI), see `tenant_report_root`.

`latest.json` keeps the latest verdict of every job ever compared (a later report that covers other jobs
does not erase a job's earlier verdict), so cutover can gate each job on its own latest parity result.
Report files are written whole (to a temporary name and renamed on a local folder; object stores write whole
objects), so readers never see half a file.

`latest.json` is updated by compare-and-swap: read it with its version, merge, write only if nobody wrote
since, else read again and retry. A job's entry is replaced only by a verdict of a newer report, so two reports
written at once keep both jobs and the newer verdict of a job both cover, whichever finishes last. The swap
goes through `dbt2prefect.object_store.versioned_file` (conditional writes on S3, a lock elsewhere).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ValidationError

from dbt2prefect.errors import ArtifactStoreError
from dbt2prefect.files import redact_url, write_text_atomic
from dbt2prefect.object_store import SwapMode, VersionedFile, is_local, open_url, versioned_file
from dbt2prefect.tenant import TenantSettings
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


SWAP_ATTEMPTS = 50


class ReportRoot:
    """The report root: a local folder or an fsspec URL (`s3://bucket/parity`)."""

    def __init__(self, root: str | Path, swap: SwapMode = "conditional") -> None:
        self.url = str(root).rstrip("/") or "."
        try:
            self.fs, self.base = open_url(self.url)
        except (ValueError, ImportError) as exc:
            raise ReportStoreError(
                f"parity report root {redact_url(self.url)!r} is not usable ({exc}); pass a folder or an fsspec URL "
                "as --report-dir, or fix `parity_report_url` in the tenant settings"
            ) from None
        self.swap = swap

    def path(self, relative: str) -> str:
        return f"{self.base.rstrip('/')}/{relative}"

    def where(self, relative: str) -> str:
        """A path or URL to show people (no credentials)."""
        return f"{redact_url(self.url)}/{relative}"

    def write_text(self, relative: str, text: str) -> None:
        try:
            if is_local(self.fs):
                write_text_atomic(Path(self.path(relative)), text)
            else:
                self.fs.makedirs(self.path(relative).rsplit("/", 1)[0], exist_ok=True)
                self.fs.pipe_file(self.path(relative), text.encode("utf-8"))
        except OSError as exc:
            raise ReportStoreError(
                f"could not write {self.where(relative)}: {exc}; pass a writable --report-dir"
            ) from None

    def read_bytes(self, relative: str) -> bytes:
        return bytes(self.fs.cat_file(self.path(relative)))

    def latest_file(self) -> VersionedFile:
        return versioned_file(self.fs, self.path(LATEST), self.swap)

    def copy_to(self, relative: str, destination: Path) -> Path:
        """Copy one report folder (`<timestamp>`) into a local folder, for a browser or a notebook; return it.

        Raises:
            ReportStoreError: the folder cannot be read or the destination written.
        """
        folder = destination / relative
        for name in ("report.json", "report.md", "report.html"):
            try:
                write_text_atomic(folder / name, self.read_bytes(f"{relative}/{name}").decode("utf-8"))
            except (OSError, UnicodeDecodeError) as exc:
                raise ReportStoreError(f"could not copy {self.where(relative)}/{name} to {folder}: {exc}") from None
        return folder

    def local_folder(self, relative: str) -> Path | None:
        """The folder as a local path, when the root is on the local file system."""
        return Path(self.path(relative)) if is_local(self.fs) else None


def tenant_report_root(tenant: TenantSettings, override: str | Path | None = None) -> ReportRoot:
    """The tenant's report root (`--report-dir` wins over the settings), swapped as the tenant says."""
    return ReportRoot(override if override else tenant.parity_report_root, tenant.compare_and_swap)


def _parse_latest(where: str, data: bytes | None) -> LatestPointer | None:
    if data is None:
        return None
    try:
        return LatestPointer.model_validate_json(data)
    except ValidationError as exc:
        raise ReportStoreError(
            f"{where} is unreadable ({str(exc).splitlines()[0]}); delete it and rerun parity"
        ) from None


def _read_latest(root: ReportRoot) -> LatestPointer | None:
    try:
        return _parse_latest(root.where(LATEST), root.latest_file().read().data)
    except OSError as exc:
        raise ReportStoreError(f"{root.where(LATEST)} is unreadable ({exc}); delete it and rerun parity") from None


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
        merged = merge_latest(_parse_latest(where, current.data), report, relative)
        if pointer_file.replace(merged.model_dump_json(indent=2).encode(), current.version):
            return merged
    raise ReportStoreError(
        f"{where} changed under every one of {SWAP_ATTEMPTS} attempts to record this report; rerun parity "
        "(its report folder is written)"
    )


def write_report_files(report: ParityReport, store: ReportRoot, folder: str) -> None:
    """Write report.json, report.md and report.html into `folder` under the root (no latest.json update).

    Raises:
        ReportStoreError: a file could not be written.
    """
    store.write_text(f"{folder}/report.json", report.model_dump_json(indent=2))
    store.write_text(f"{folder}/report.md", report_markdown(report))
    store.write_text(f"{folder}/report.html", report_html(report))


def write_report(report: ParityReport, root: str | Path | ReportRoot = DEFAULT_REPORT_ROOT) -> str:
    """Write report.json, report.md and report.html in a new timestamped folder; update latest.json.

    Returns:
        The folder written (a local path, or a URL without credentials).
    """
    store = root if isinstance(root, ReportRoot) else ReportRoot(root)
    stamp = report.created_at.strftime("%Y%m%dT%H%M%S%fZ")
    write_report_files(report, store, stamp)
    try:
        update_latest(store.latest_file(), report, f"{stamp}/report.json", store.where(LATEST))
    except (OSError, ArtifactStoreError) as exc:
        raise ReportStoreError(f"could not write {store.where(LATEST)}: {exc}; pass a writable --report-dir") from None
    local = store.local_folder(stamp)
    return str(local) if local is not None else store.where(stamp)


def load_latest_verdicts(
    report_root: str | Path | ReportRoot = DEFAULT_REPORT_ROOT,
) -> dict[int, tuple[Verdict, datetime]]:
    """The latest parity verdict and its time for every job ever compared under `report_root`."""
    store = report_root if isinstance(report_root, ReportRoot) else ReportRoot(report_root)
    pointer = _read_latest(store)
    if pointer is None:
        return {}
    return {job_id: (entry.verdict, entry.time) for job_id, entry in pointer.jobs.items()}


def load_latest_report(report_root: str | Path | ReportRoot = DEFAULT_REPORT_ROOT) -> ParityReport | None:
    """The most recently written report, or None when there is none."""
    store = report_root if isinstance(report_root, ReportRoot) else ReportRoot(report_root)
    pointer = _read_latest(store)
    if pointer is None:
        return None
    try:
        return ParityReport.model_validate_json(store.read_bytes(pointer.report))
    except (OSError, ValidationError) as exc:
        raise ReportStoreError(f"{store.where(pointer.report)} is unreadable: {str(exc).splitlines()[0]}") from None


def report_json(report: ParityReport) -> str:
    """The report as JSON text (round-trips through `ParityReport.model_validate_json`)."""
    return json.dumps(report.model_dump(mode="json"), indent=2)
