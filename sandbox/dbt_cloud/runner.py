"""Runs a sandbox job's steps with real dbt Core, in dbt Cloud's step order, and keeps each step's artifacts.

Each dbt step is a subprocess of the virtualenv's `dbt`, not an in-process `dbtRunner`: dbtRunner keeps
global state (flags, adapters, event manager) and is not safe to call from two threads of one process, while
the sandbox serves HTTP and may run jobs from worker threads at the same time. A subprocess also gives each
step its own exit code and log text, which is what a dbt Cloud run step records.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dbt2prefect.dbt_packages import dbt_executable, has_packages, private_copy, project_profile
from dbt2prefect.escaping import shell_line
from sandbox.dbt_cloud.clock import hms, run_timestamp, utcnow
from sandbox.warehouse import RAW_DB, duckdb_output

ARTIFACT_FILES = ("manifest.json", "run_results.json", "catalog.json", "sources.json")
MAX_LOG_CHARS = 200_000


class StepParseError(ValueError):
    """An execute step is not a dbt command line."""


@dataclass(frozen=True)
class PlannedStep:
    """One run step. `args` is None for the clone/profile placeholders; `fails_run` is False for the docs and
    freshness checkboxes, whose failure does not fail a dbt Cloud run."""

    name: str
    args: tuple[str, ...] | None
    fails_run: bool = True


def parse_step(command: str) -> tuple[str, ...]:
    """Split a dbt Cloud execute step with shlex and drop the leading `dbt`."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise StepParseError(f"step {command!r} is not a valid command line: {exc}") from None
    if not words or words[0] != "dbt" or len(words) < 2:
        raise StepParseError(f"step {command!r} must start with 'dbt' and name a dbt command")
    return tuple(words[1:])


def step_targets(args: tuple[str, ...]) -> list[str]:
    """Targets a step names with --target/-t (the profile must define them), read by the one dbt parser."""
    from dbt2prefect.dbt_cli import parse_args
    from dbt2prefect.errors import DbtCommandError

    try:
        target = parse_args(args).options.get("target")
    except DbtCommandError:
        return []  # dbt itself reports the bad line when the step runs, as in dbt Cloud
    return [str(target)] if target else []


def plan_steps(job: dict[str, Any], overrides: dict[str, Any] | None = None) -> list[PlannedStep]:
    """The steps dbt Cloud runs for a job: clone, profile, deps, freshness checkbox, execute steps, docs."""
    overrides = overrides or {}
    steps = overrides.get("steps_override") or job.get("execute_steps") or []
    docs = overrides.get("generate_docs_override", job.get("generate_docs", False))
    planned = [
        PlannedStep("Clone git repository", None),
        PlannedStep("Create profile from connection DuckDB (sandbox)", None),
        PlannedStep("Invoke dbt with `dbt deps`", ("deps",)),
    ]
    if job.get("run_generate_sources"):
        planned.append(PlannedStep("Invoke dbt with `dbt source freshness`", ("source", "freshness"), False))
    planned += [PlannedStep(f"Invoke dbt with `{cmd}`", parse_step(cmd)) for cmd in steps]
    if docs:
        planned.append(PlannedStep("Invoke dbt with `dbt docs generate`", ("docs", "generate"), False))
    return planned


@dataclass(frozen=True)
class StepResult:
    index: int
    name: str
    status: int
    logs: str
    started_at: str
    finished_at: str
    duration: str
    dbt_command: str | None
    artifact_dir: Path | None


class JobRunner:
    """Executes planned steps for one sandbox account.

    Args:
        project_dir: the dbt project (the tenant's). Each run works on its own copy, as dbt Cloud clones the
            repository for each run: `dbt deps` installs packages there, never in the team's folder.
        warehouse_base: folder of the DuckDB files (None: `$DBT2PREFECT_WAREHOUSE_DIR` or the default).
        artifacts_dir: where each run's step artifacts are kept.
        step_timeout: seconds one dbt step may take.
        raw_catalog: alias under which every target attaches the raw database (None: attach nothing, for a
            project that loads its raw data itself, e.g. as seeds).
    """

    def __init__(
        self,
        project_dir: Path,
        artifacts_dir: Path,
        warehouse_base: Path | None = None,
        step_timeout: float = 1800.0,
        raw_catalog: str | None = RAW_DB,
    ) -> None:
        self.project_dir = Path(project_dir)
        self.artifacts_dir = Path(artifacts_dir)
        self.warehouse_base = warehouse_base
        self.step_timeout = step_timeout
        self.raw_catalog = raw_catalog

    def _write_profile(self, directory: Path, targets: list[str], default: str, threads: int) -> None:
        outputs = {
            t: duckdb_output(t, self.warehouse_base, threads=threads, raw_catalog=self.raw_catalog)
            for t in dict.fromkeys(targets)
        }
        profile = {project_profile(self.project_dir): {"target": default, "outputs": outputs}}
        (directory / "profiles.yml").write_text(yaml.safe_dump(profile, sort_keys=False), encoding="utf-8")

    def run(
        self,
        run_id: int,
        job: dict[str, Any],
        overrides: dict[str, Any] | None,
        on_step: Callable[[StepResult], None],
        env_vars: Mapping[str, str] | None = None,
    ) -> bool:
        """Run every step, reporting each through `on_step`; stop at the first failing step that fails the run.

        `env_vars` are the job's environment variables, set for every dbt step as dbt Cloud sets them.

        Returns:
            True when the run succeeded.
        """
        overrides = overrides or {}
        planned = plan_steps(job, overrides)
        settings = job.get("settings") or {}
        target = overrides.get("target_name_override") or settings.get("target_name") or "default"
        threads = int(overrides.get("threads_override") or settings.get("threads") or 1)
        run_dir = self.artifacts_dir / str(run_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        # dbt Cloud's job timeout (0 = none) bounds each step here; the runner's own limit applies otherwise.
        job_timeout = float((job.get("execution") or {}).get("timeout_seconds") or 0)
        step_timeout = overrides.get("timeout_seconds_override") or job_timeout or self.step_timeout
        packages = has_packages(self.project_dir)
        with tempfile.TemporaryDirectory(prefix=f"dbt-cloud-sandbox-{run_id}-") as tmp:
            work = Path(tmp)
            project = private_copy(self.project_dir, work / "project")
            targets = [target] + [t for s in planned if s.args for t in step_targets(s.args)]
            self._write_profile(work, targets, target, threads)
            previous_target_path: Path | None = None
            for index, step in enumerate(planned, start=1):
                started = time.monotonic()
                started_at = _now()
                if step.args is None or (step.args == ("deps",) and not packages):
                    logs = "Skipped: the project has no packages.yml." if step.args else f"{step.name}: done."
                    on_step(self._result(index, step, 10, logs, started, started_at, None))
                    continue
                target_path = work / f"target-step-{index}"
                target_path.mkdir()
                if previous_target_path is not None:
                    # Reuse the previous step's parse, as one dbt Cloud run does within its single checkout.
                    state = previous_target_path / "partial_parse.msgpack"
                    if state.exists():
                        shutil.copy2(state, target_path / state.name)
                code, logs = self._invoke(step.args, work, project, target_path, float(step_timeout), env_vars)
                artifact_dir = self._keep_artifacts(target_path, run_dir / f"step-{index}")
                previous_target_path = target_path
                status = 10 if code == 0 else 20
                on_step(self._result(index, step, status, logs, started, started_at, artifact_dir))
                if status == 20 and step.fails_run:
                    return False
        return True

    def _invoke(
        self,
        args: tuple[str, ...],
        work: Path,
        project: Path,
        target_path: Path,
        timeout: float,
        env_vars: Mapping[str, str] | None = None,
    ) -> tuple[int, str]:
        env = {
            **os.environ,
            **(env_vars or {}),
            "DBT_PROFILES_DIR": str(work),
            "DBT_PROJECT_DIR": str(project),
            "DBT_TARGET_PATH": str(target_path),
            "DBT_LOG_PATH": str(target_path / "logs"),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DBT_USE_COLORS": "false",
            "DBT_PRINTER_WIDTH": "100",
        }
        try:
            proc = subprocess.run(
                [dbt_executable(), *args],
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return 124, f"dbt {' '.join(args)} timed out after {timeout:.0f}s"
        except OSError as exc:
            return 127, f"could not start dbt: {exc}"
        logs = (proc.stdout + proc.stderr)[-MAX_LOG_CHARS:]
        return proc.returncode, logs

    @staticmethod
    def _keep_artifacts(target_path: Path, destination: Path) -> Path | None:
        files = [target_path / name for name in ARTIFACT_FILES if (target_path / name).is_file()]
        if not files:
            return None
        destination.mkdir(parents=True, exist_ok=True)
        for file in files:
            shutil.copy2(file, destination / file.name)
        return destination

    @staticmethod
    def _result(
        index: int,
        step: PlannedStep,
        status: int,
        logs: str,
        started: float,
        started_at: str,
        artifact_dir: Path | None,
    ) -> StepResult:
        return StepResult(
            index=index,
            name=step.name,
            status=status,
            logs=logs,
            started_at=started_at,
            finished_at=_now(),
            duration=hms(time.monotonic() - started),
            dbt_command=("dbt " + shell_line(step.args)) if step.args else None,
            artifact_dir=artifact_dir,
        )


def _now() -> str:
    return run_timestamp(utcnow()) or ""
