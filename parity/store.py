"""Report files on disk: `<root>/<timestamp>/report.{json,md,html}` plus `<root>/latest.json`.

`latest.json` keeps the latest verdict of every job ever compared (a later report that covers other jobs
does not erase a job's earlier verdict), so cutover can gate each job on its own latest parity result.
All files are written to a temporary name and renamed, so readers never see half a file.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

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


def _atomic_write(path: Path, text: str) -> None:
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        raise ReportStoreError(f"could not write {path}: {exc}; pass a writable --report-dir") from None


def _read_latest(root: Path) -> LatestPointer | None:
    path = root / LATEST
    if not path.exists():
        return None
    try:
        return LatestPointer.model_validate_json(path.read_bytes())
    except (OSError, ValidationError) as exc:
        raise ReportStoreError(
            f"{path} is unreadable ({str(exc).splitlines()[0]}); delete it and rerun parity"
        ) from None


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
    previous = _read_latest(root)
    jobs = dict(previous.jobs) if previous else {}
    relative = f"{stamp}/report.json"
    for job in report.jobs:
        jobs[job.job_id] = JobVerdict(verdict=job.verdict, time=report.created_at, report=relative)
    pointer = LatestPointer(report=relative, verdict=report.verdict, time=report.created_at, jobs=jobs)
    _atomic_write(root / LATEST, pointer.model_dump_json(indent=2))
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
