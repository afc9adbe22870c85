"""The run-artifact store: dbt artifacts of every `run_dbt_wg` run, under an fsspec URL.

Layout (local folder by default, object storage in production)::

    <url>/<tenant>/<deployment>/<target>/<flow_run_id>/manifest.json
                                                     /run_results.json
                                                     /sources.json, catalog.json   (when produced)
                                                     /run.json                     (parameters, status, times)
    <url>/<tenant>/<deployment>/<target>/latest.json   {"flow_run_id": ...} of the last successful run
    <url>/<tenant>/<deployment>/<target>/jobs/<dbt Cloud job id>.json   {"flow_run_id": ...} of the job's last run
    <url>/<tenant>/<deployment>/<target>/writers/<flow_run_id>.json     who wrote the target's database, when

A writer record is written when a run starts (`running`, with the time after which a run that never reported
its end counts as dead) and again when it ends (its status and the nodes it wrote). Each run writes only its own
record, so concurrent runs never race on one file; parity reads them all to prove that no later run rewrote
the data it compares (see `parity.binding`).

Writes go to a temporary name first and are then moved into place, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from dbt2prefect.errors import ArtifactStoreError
from dbt2prefect.files import segment_problem, write_bytes_atomic
from dbt2prefect.object_store import open_url

DBT_ARTIFACTS = ("manifest.json", "run_results.json", "sources.json", "catalog.json")
DBT_LOG = "dbt.log"
"""dbt's log of every step of the run, kept with the artifacts (not downloaded for `--state`)."""
RUN_FILES = (*DBT_ARTIFACTS, DBT_LOG)
LATEST = "latest.json"
RUN_RECORD = "run.json"
JOBS_DIR = "jobs"
WRITERS_DIR = "writers"


@dataclass(frozen=True)
class WriterRecord:
    """One run that wrote (or is writing) a target's database.

    `finished_at` is None while the run is running; `nodes` the unique_ids it wrote (None: unknown, i.e. any).
    """

    flow_run_id: str
    started_at: datetime
    expires_at: datetime
    finished_at: datetime | None = None
    status: str = "running"
    job_id: int | None = None
    nodes: frozenset[str] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "flow_run_id": self.flow_run_id,
            "started_at": self.started_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "status": self.status,
            "job_id": self.job_id,
            "nodes": sorted(self.nodes) if self.nodes is not None else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WriterRecord:
        nodes = data.get("nodes")
        return cls(
            flow_run_id=str(data["flow_run_id"]),
            started_at=datetime.fromisoformat(str(data["started_at"])),
            expires_at=datetime.fromisoformat(str(data["expires_at"])),
            finished_at=datetime.fromisoformat(str(data["finished_at"])) if data.get("finished_at") else None,
            status=str(data.get("status") or "running"),
            job_id=int(data["job_id"]) if data.get("job_id") is not None else None,
            nodes=frozenset(str(n) for n in nodes) if isinstance(nodes, list) else None,
        )


@dataclass(frozen=True)
class RunKey:
    """Identifies one stored run."""

    tenant: str
    deployment: str
    target: str
    flow_run_id: str

    def __post_init__(self) -> None:
        # Each field becomes one folder name: `..` or a '/' would read or write outside the store.
        for name in ("tenant", "deployment", "target", "flow_run_id"):
            problem = segment_problem(getattr(self, name))
            if problem is not None:
                raise ArtifactStoreError(f"run {name} {problem}")


class ArtifactStore:
    """Reads and writes run artifacts under one fsspec URL."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        try:
            self._fs, self._root = open_url(self.url)
        except (ValueError, ImportError) as exc:
            raise ArtifactStoreError(
                f"artifact store URL {url!r} is not usable ({exc}); use a folder path or an fsspec URL"
            ) from None

    def _join(self, *parts: str) -> str:
        return "/".join([self._root.rstrip("/"), *parts])

    def target_dir(self, tenant: str, deployment: str, target: str) -> str:
        return self._join(tenant, deployment, target)

    def run_dir(self, key: RunKey) -> str:
        return self._join(key.tenant, key.deployment, key.target, key.flow_run_id)

    def local_path(self, key: RunKey) -> Path | None:
        """The run's folder as a local path, when the store is on the local file system."""
        if self._fs.protocol in ("file", ("file", "local")) or "file" in self._fs.protocol:
            return Path(self.run_dir(key))
        return None

    def _write_bytes(self, path: str, data: bytes) -> None:
        parent = path.rsplit("/", 1)[0]
        tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
        try:
            self._fs.makedirs(parent, exist_ok=True)
            with self._fs.open(tmp, "wb") as handle:
                handle.write(data)
            self._fs.mv(tmp, path)
        except OSError as exc:
            raise ArtifactStoreError(f"could not write {path} in the artifact store {self.url}: {exc}") from None

    def save_run(self, key: RunKey, target_path: Path, record: dict[str, Any], files: Iterable[str] = RUN_FILES) -> str:
        """Copy the dbt artifacts and log found in `target_path` and the run record into the store; return the run folder."""
        for name in files:
            source = target_path / name
            if source.is_file():
                self._write_bytes(f"{self.run_dir(key)}/{name}", source.read_bytes())
        self._write_bytes(f"{self.run_dir(key)}/{RUN_RECORD}", json.dumps(record, indent=2, default=str).encode())
        return self.run_dir(key)

    def mark_latest(self, key: RunKey) -> None:
        """Point `latest.json` of the key's target at this run (call only for successful runs)."""
        self._write_bytes(f"{self.target_dir(key.tenant, key.deployment, key.target)}/{LATEST}", self._pointer(key))

    def latest(self, tenant: str, deployment: str, target: str) -> RunKey | None:
        """The last successful run of a deployment and target, or None when there is none yet."""
        return self._follow(f"{self.target_dir(tenant, deployment, target)}/{LATEST}", tenant, deployment, target)

    @staticmethod
    def _pointer(key: RunKey) -> bytes:
        return json.dumps({"flow_run_id": key.flow_run_id}).encode()

    def _follow(self, path: str, tenant: str, deployment: str, target: str) -> RunKey | None:
        if not self._fs.exists(path):
            return None
        data = self._read_json_path(path)
        run_id = data.get("flow_run_id")
        if not isinstance(run_id, str) or segment_problem(run_id) is not None:
            raise ArtifactStoreError(
                f"{path} in the artifact store {self.url} holds no usable flow_run_id; delete it (the next "
                "successful run writes it again) or restore it from a backup"
            )
        return RunKey(tenant, deployment, target, run_id)

    def mark_job_run(self, key: RunKey, job_id: int) -> None:
        """Point the dbt Cloud job's pointer on the key's target at this run (successful or not)."""
        self._write_bytes(self._job_pointer(key.tenant, key.deployment, key.target, job_id), self._pointer(key))

    def job_run(self, tenant: str, deployment: str, target: str, job_id: int) -> RunKey | None:
        """The last run of dbt Cloud job `job_id` on a target (its `dbt_cloud_job_id`), or None when it has none."""
        return self._follow(self._job_pointer(tenant, deployment, target, job_id), tenant, deployment, target)

    def _job_pointer(self, tenant: str, deployment: str, target: str, job_id: int) -> str:
        return f"{self.target_dir(tenant, deployment, target)}/{JOBS_DIR}/{int(job_id)}.json"

    def record_writer(self, key: RunKey, record: WriterRecord) -> None:
        """Record (again) that run `key` writes the database of `key.target`."""
        path = f"{self.target_dir(key.tenant, key.deployment, key.target)}/{WRITERS_DIR}/{key.flow_run_id}.json"
        self._write_bytes(path, json.dumps(record.to_json(), indent=2).encode())

    def writers(self, tenant: str, deployment: str, target: str) -> list[WriterRecord]:
        """Every recorded writer of a target's database, oldest start first.

        Raises:
            ArtifactStoreError: a record is unreadable (the message names it).
        """
        folder = f"{self.target_dir(tenant, deployment, target)}/{WRITERS_DIR}"
        if not self._fs.exists(folder):
            return []
        records = []
        for path in self._fs.ls(folder, detail=False):
            if not str(path).endswith(".json") or str(path).rsplit("/", 1)[-1].startswith(".tmp-"):
                continue
            data = self._read_json_path(str(path))
            try:
                records.append(WriterRecord.from_json(data))
            except (KeyError, ValueError, TypeError) as exc:
                raise ArtifactStoreError(
                    f"{path} in the artifact store {self.url} is not a writer record ({exc}); restore or delete it"
                ) from None
        return sorted(records, key=lambda record: record.started_at)

    def has(self, key: RunKey, name: str) -> bool:
        return bool(self._fs.exists(f"{self.run_dir(key)}/{name}"))

    def read_json(self, key: RunKey, name: str) -> dict[str, Any]:
        """Read one JSON file of a stored run."""
        return self._read_json_path(f"{self.run_dir(key)}/{name}")

    def download(self, key: RunKey, destination: Path) -> Path:
        """Copy a stored run's files into a local folder (for `--state`)."""
        destination.mkdir(parents=True, exist_ok=True)
        for name in (*DBT_ARTIFACTS, RUN_RECORD):
            path = f"{self.run_dir(key)}/{name}"
            if self._fs.exists(path):
                with self._fs.open(path, "rb") as handle:
                    # Replaces a symbolic link in the folder; never writes through it.
                    write_bytes_atomic(destination / name, handle.read())
        return destination

    def download_latest(self, tenant: str, deployment: str, target: str, destination: Path) -> RunKey:
        """Copy the last successful run of a deployment and target into a local folder; return its key.

        Raises:
            ArtifactStoreError: no successful run is stored for that target yet.
        """
        key = self.latest(tenant, deployment, target)
        if key is None:
            raise ArtifactStoreError(
                f"no successful run of {deployment} on target {target!r} is stored in the artifact store {self.url}; "
                "run the target's jobs once under Prefect first"
            )
        if not self.has(key, "manifest.json"):
            # Nothing usable for --state: a run without a manifest, or a pointer to a run that is not stored.
            where = "has no manifest.json" if self._fs.exists(self.run_dir(key)) else "is not stored"
            raise ArtifactStoreError(
                f"the latest successful run of {deployment} on target {target!r} ({key.flow_run_id}, named by "
                f"{LATEST}) {where} in the artifact store {self.url}; nothing was fetched. Run a job that builds the "
                f"project on {target!r} (its manifest is stored), or restore the run from a backup"
            )
        try:
            self.download(key, destination)
        except OSError as exc:
            raise ArtifactStoreError(f"could not write {destination}: {exc.strerror or exc}") from None
        return key

    def find_run(self, tenant: str, deployment: str, flow_run_id: str) -> RunKey | None:
        """Find a stored run by flow-run id across the deployment's targets."""
        base = self._join(tenant, deployment)
        if not self._fs.exists(base):
            return None
        for target_dir in self._fs.ls(base, detail=False):
            target = str(target_dir).rstrip("/").rsplit("/", 1)[-1]
            key = RunKey(tenant, deployment, target, flow_run_id)
            if self._fs.exists(self.run_dir(key)):
                return key
        return None

    def _read_json_path(self, path: str) -> dict[str, Any]:
        try:
            with self._fs.open(path, "rb") as handle:
                data = json.loads(handle.read())
        except FileNotFoundError:
            raise ArtifactStoreError(f"{path} is not in the artifact store {self.url}") from None
        except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad JSON or not UTF-8
            raise ArtifactStoreError(f"{path} in the artifact store {self.url} is unreadable: {exc}") from None
        if not isinstance(data, dict):
            raise ArtifactStoreError(f"{path} in the artifact store {self.url} is not a JSON object")
        return data
