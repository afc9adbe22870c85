"""Two DuckDB databases built by real dbt runs of the tenant project: `prod` (baseline) and `parity` (candidate).

Built once per session (two `dbt run`s of the hourly selection, side by side in dbt subprocesses, so no DuckDB
file stays open in the test process); tests that change a side work on a copy of its file, so every test starts from the same two
real databases.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
import yaml

from dbt2prefect.warehouse import DuckDBWarehouse
from parity.artifacts import RunArtifacts, load_manifest, load_run_results
from sandbox.datagen import generate
from sandbox.warehouse import duckdb_output

REPO = Path(__file__).resolve().parents[2]
SELECT = "+tag:hourly"
DBT = str(Path(sys.executable).with_name("dbt"))


@dataclass(frozen=True)
class BuiltTenant:
    """The project copy, the warehouse folder and each target's run artifacts."""

    project_dir: Path
    warehouse: Path
    artifacts: dict[str, RunArtifacts]

    def database(self, target: str) -> Path:
        return self.warehouse / f"{target}.duckdb"

    def candidate_copy(self, folder: Path, *statements: str) -> Path:
        """A copy of the `parity` database (same file name, so same catalog name) with `statements` applied."""
        return self._copy("parity", folder, statements)

    def baseline_copy(self, folder: Path, *statements: str) -> Path:
        """A copy of the `prod` database with `statements` applied."""
        return self._copy("prod", folder, statements)

    def _copy(self, target: str, folder: Path, statements: tuple[str, ...]) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{target}.duckdb"
        shutil.copy(self.database(target), path)
        shutil.copy(self.database("raw"), folder / "raw.duckdb")
        with duckdb.connect(str(path)) as conn:
            conn.execute(f"attach '{folder / 'raw.duckdb'}' as raw (read_only)")
            for sql in statements:
                conn.execute(sql)
        return path

    def warehouse_of(self, path: Path) -> DuckDBWarehouse:
        """A warehouse on `path` with the raw database beside it (a copy's own, or the built one)."""
        return DuckDBWarehouse(path, attach=[{"path": str(path.with_name("raw.duckdb")), "alias": "raw"}])


@pytest.fixture(scope="session")
def built_tenant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltTenant]:
    root = tmp_path_factory.mktemp("parity-dbt")
    project = root / "dbt_williamgrant"
    shutil.copytree(
        REPO / "tenants" / "dbt_williamgrant", project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages")
    )
    warehouse = root / "warehouse"
    generate(warehouse)
    profiles = root / "profiles"
    profiles.mkdir()
    outputs = {target: duckdb_output(target, warehouse, threads=2) for target in ("prod", "parity")}
    (profiles / "profiles.yml").write_text(
        yaml.safe_dump({"dbt_williamgrant": {"target": "prod", "outputs": outputs}}), encoding="utf-8"
    )
    # The two runs at the same time: each writes its own database and target folder, and reads the raw database
    # read-only (DuckDB lets several processes open a file read-only).
    runs: dict[str, subprocess.Popen[str]] = {}
    for target in ("prod", "parity"):
        args = ["--quiet", "--log-path", str(root / f"logs-{target}"), "run", "--select", SELECT, "--target", target]
        args += ["--project-dir", str(project), "--profiles-dir", str(profiles)]
        args += ["--target-path", str(root / f"target-{target}")]
        runs[target] = subprocess.Popen([DBT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    artifacts: dict[str, RunArtifacts] = {}
    for target, process in runs.items():
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, f"dbt run --target {target}: " + out[-3000:] + err[-3000:]
        target_path = root / f"target-{target}"
        artifacts[target] = RunArtifacts(
            label=target,
            manifest=load_manifest(target_path / "manifest.json"),
            run_results=load_run_results(target_path / "run_results.json"),
        )
    yield BuiltTenant(project, warehouse, artifacts)
