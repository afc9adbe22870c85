"""Resolve jobs' selections to node sets on the candidate project: one process, one parsed manifest.

`dbtRunner().invoke(["parse"])` parses the project once per (target, vars); every selection is then resolved with
`dbtRunner(manifest=m).invoke(["ls", ...])`, which reuses the parsed manifest. `dbt ls` needs a profile but
never connects, so the resolver writes a throwaway DuckDB profile (one output per target name asked for) into
its own temporary folder, together with dbt's target and log paths: nothing is written into the project.

The same parses answer a second question the explanations need: which nodes are enabled when the candidate
project is parsed under the *baseline's* target name (a node that flips is a target-dependent config).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from dbt2prefect.dbt_packages import prepared_project
from dbt2prefect.files import write_text_atomic
from parity.artifacts import GRAPH_SECTIONS
from parity.errors import SelectionError

if TYPE_CHECKING:
    from dbt2prefect.params import RunParameters

# Resource types each building command executes (and therefore writes to run_results.json).
EXECUTED_TYPES: dict[str, frozenset[str]] = {
    "build": frozenset({"model", "seed", "snapshot", "test", "unit_test", "function"}),
    "run": frozenset({"model"}),
    "test": frozenset({"test", "unit_test"}),
    "seed": frozenset({"seed"}),
    "snapshot": frozenset({"snapshot"}),
}


def build_types() -> frozenset[str]:
    """What `dbt build` executes with the installed dbt: since 1.10 also exposures and saved queries (no-ops)."""
    try:
        from dbt.task.build import BuildTask

        return frozenset(str(node_type) for node_type in BuildTask.RUNNER_MAP)
    except (ImportError, AttributeError):  # another layout of dbt's build task: the types it had up to 1.9
        return EXECUTED_TYPES["build"]


@dataclass(frozen=True)
class StepSelection:
    """The selection of one building dbt step, as dbt's own parser reads the step's arguments."""

    command: str
    select: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    selector: str | None = None
    vars: str | None = None
    resource_types: tuple[str, ...] = ()
    exclude_resource_types: tuple[str, ...] = ()
    indirect_selection: str | None = None
    line: str = ""

    def executed_types(self) -> frozenset[str]:
        types = build_types() if self.command == "build" else EXECUTED_TYPES[self.command]
        if self.resource_types and "all" not in self.resource_types:
            types = types & frozenset(self.resource_types)
        return types - frozenset(self.exclude_resource_types)


def parse_step_args(args: list[str], line: str = "") -> StepSelection | None:
    """The selection of one dbt argument list (`['build', '--select', 'tag:daily', ...]`), None when the
    command does not build (deps, docs generate, source freshness, run-operation, ...).

    Read by the toolkit's one dbt parser (`dbt2prefect.dbt_cli`), as the flow and the translator read it.

    Raises:
        SelectionError: dbt's parser rejects the arguments.
    """
    from dbt2prefect.dbt_cli import flatten, parse_args
    from dbt2prefect.errors import DbtCommandError

    try:
        step = parse_args(args, line or None)
    except DbtCommandError as exc:
        raise SelectionError(f"step {line or ' '.join(args)!r}: {exc}") from None
    if step.command not in EXECUTED_TYPES:
        return None
    options = step.options
    selector = options.get("selector")
    return StepSelection(
        command=step.command,
        select=flatten(options.get("select")),
        exclude=flatten(options.get("exclude")),
        selector=str(selector) if selector else None,
        vars=str(options["vars"]) if options.get("vars") else None,
        resource_types=flatten(options.get("resource_types")),
        exclude_resource_types=flatten(options.get("exclude_resource_types")),
        indirect_selection=str(options["indirect_selection"]) if options.get("indirect_selection") else None,
        line=line or " ".join(args),
    )


def selections_from_parameters(
    parameters: RunParameters | Mapping[str, Any], target: str = "parity"
) -> list[StepSelection]:
    """The building steps of a `run_dbt_wg` parameter set, in order (checkbox steps build nothing); validated
    parameters keep the steps they parsed.

    Raises:
        ParameterError: the parameters (a mapping) are not valid for the flow.
    """
    from dbt2prefect.params import RunParameters, plan_invocations, validate

    if isinstance(parameters, RunParameters):
        params = parameters.model_copy(update={"target": target})
    else:
        params = validate({k: v for k, v in parameters.items() if k != "target"} | {"target": target})
    selections: list[StepSelection] = []
    for invocation in plan_invocations(params, target, state_dir=None):
        step = parse_step_args(invocation.args, invocation.label)
        if step is not None:
            selections.append(step)
    return selections


def pick_step(selections: list[StepSelection], command: str | None) -> StepSelection | None:
    """The step matching a baseline's `args.which`: the last building step with that command (or the last one)."""
    matching = [s for s in selections if command is None or s.command == command]
    if matching:
        return matching[-1]
    return selections[-1] if selections else None


class SelectionResolver:
    """Parses the candidate project once per (target, vars) and resolves selections in-process.

    Use as a context manager (or call `close()`): it owns a temporary folder.

    With `cache_dir`, each target's throwaway profile and dbt target path live in a stable folder there and dbt's
    partial parsing is on, so a later resolver (the next parity run) re-parses only what changed; dbt itself checks
    the saved parse against the project files, vars and profile and parses from scratch when any of them differ.
    """

    def __init__(self, project_dir: Path, profile_name: str | None = None, cache_dir: Path | None = None) -> None:
        self.project_dir = Path(project_dir).resolve()
        if not (self.project_dir / "dbt_project.yml").is_file():
            raise SelectionError(f"{self.project_dir} holds no dbt_project.yml; pass the candidate dbt project folder")
        self.profile_name = profile_name or self._profile_from_project()
        self._tmp = Path(tempfile.mkdtemp(prefix="dbt2prefect-selection-"))
        self._cache: Path | None = None
        if cache_dir is not None:
            digest = hashlib.sha256(str(self.project_dir).encode()).hexdigest()[:16]
            self._cache = Path(cache_dir) / digest
        # A project with packages parses in a private copy with them installed, as the flow runs it; dbt's saved
        # parse names absolute paths, so that copy (a new folder each time) parses from scratch.
        from dbt2prefect.run_job import package_cache_dir

        original = self.project_dir
        self.project_dir = prepared_project(original, self._tmp / "project", package_cache_dir())
        if self.project_dir != original:
            self._cache = None
        self._targets: set[str] = set()
        self._manifests: dict[tuple[str, str | None], Any] = {}
        self.parses = 0
        self.resolutions = 0

    def _profile_from_project(self) -> str:
        try:
            data = yaml.safe_load((self.project_dir / "dbt_project.yml").read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise SelectionError(f"{self.project_dir}/dbt_project.yml is unreadable: {exc}") from None
        if not isinstance(data, dict) or not data.get("profile"):
            raise SelectionError(f"{self.project_dir}/dbt_project.yml names no `profile`")
        return str(data["profile"])

    def __enter__(self) -> SelectionResolver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._manifests.clear()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _work(self, target: str) -> Path:
        """The folder holding one target's profile and dbt target path (stable when cached)."""
        return (self._cache if self._cache is not None else self._tmp) / target

    def _ensure_profile(self, target: str) -> None:
        if target in self._targets:
            return
        self._targets.add(target)
        work = self._work(target)
        work.mkdir(parents=True, exist_ok=True)
        # Never opened: dbt parse and ls do not connect. The path only has to be a valid DuckDB file name, and a
        # stable one, because dbt's partial parsing compares a hash of the profile.
        output = {"type": "duckdb", "path": str(work / "never-opened.duckdb"), "schema": "main", "threads": 1}
        profile = {self.profile_name: {"target": target, "outputs": {target: output}}}
        write_text_atomic(work / "profiles.yml", yaml.safe_dump(profile))

    def _common(self, target: str) -> list[str]:
        work = self._work(target)
        return [
            "--project-dir",
            str(self.project_dir),
            "--profiles-dir",
            str(work),
            "--target",
            target,
            "--target-path",
            str(work / "target"),
            "--log-path",
            str(self._tmp / "logs"),
            "--log-level",
            "none",
            "--partial-parse" if self._cache is not None else "--no-partial-parse",
            "--no-write-json",
        ]

    def manifest(self, target: str, vars: str | None = None) -> Any:
        """The parsed dbt Manifest of the project under `target` (and `--vars`), cached."""
        key = (target, vars)
        if key not in self._manifests:
            from dbt.cli.main import dbtRunner

            self._ensure_profile(target)
            args = ["parse", *self._common(target)]
            if vars:
                args += ["--vars", vars]
            result = dbtRunner().invoke(args)
            self.parses += 1
            if not result.success or result.result is None:
                reason = result.exception or "see the dbt log"
                raise SelectionError(
                    f"dbt parse of {self.project_dir} (target {target!r}) failed: {reason}; "
                    f"log: {self._tmp / 'logs' / 'dbt.log'}"
                )
            self._manifests[key] = result.result
        return self._manifests[key]

    def enabled_nodes(self, target: str, vars: str | None = None) -> frozenset[str]:
        """unique_ids of every enabled resource (nodes, sources, unit tests, exposures, ...) under `target`."""
        manifest = self.manifest(target, vars)
        ids: set[str] = set()
        for section in GRAPH_SECTIONS:
            ids |= set(getattr(manifest, section, None) or {})
        return frozenset(ids)

    def resolve(self, step: StepSelection, target: str) -> frozenset[str]:
        """unique_ids the step executes on the project under `target` (same resolution as the step itself)."""
        from dbt.cli.main import dbtRunner

        manifest = self.manifest(target, step.vars)
        args = ["ls", *self._common(target), "--output", "json", "--output-keys", "unique_id resource_type"]
        if step.select:
            args += ["--select", *step.select]
        if step.exclude:
            args += ["--exclude", *step.exclude]
        if step.selector:
            args += ["--selector", step.selector]
        if step.vars:
            args += ["--vars", step.vars]
        if step.indirect_selection:
            args += ["--indirect-selection", step.indirect_selection]
        result = dbtRunner(manifest=manifest).invoke(args)
        self.resolutions += 1
        if not result.success:
            raise SelectionError(
                f"selection of step {step.line!r} could not be resolved on {self.project_dir}: "
                f"{result.exception or 'see ' + str(self._tmp / 'logs' / 'dbt.log')}"
            )
        types = step.executed_types()
        selected: set[str] = set()
        for line in result.result or []:
            item = json.loads(line)
            if item.get("resource_type") in types:
                selected.add(str(item["unique_id"]))
        return frozenset(selected)
