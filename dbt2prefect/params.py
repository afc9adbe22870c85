"""Parameters of `run_dbt_wg`, validated before any dbt process starts, and the dbt command lines they mean.

Arguments are always built as lists and handed to dbt in-process; nothing goes through a shell.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dbt2prefect.dbt_cli import ParsedStep, check_selection, parse_step_line, parse_vars, validate_step
from dbt2prefect.errors import DbtCommandError, ParameterError
from dbt2prefect.reasons import ReasonCode
from dbt2prefect.run_env import SECRET_ENV_PREFIX, env_name_problem

COMMANDS: dict[str, tuple[str, ...]] = {
    "build": ("build",),
    "run": ("run",),
    "test": ("test",),
    "seed": ("seed",),
    "snapshot": ("snapshot",),
    "deps": ("deps",),
    "clean": ("clean",),
    "source freshness": ("source", "freshness"),
    "docs generate": ("docs", "generate"),
    "compile": ("compile",),
    "ls": ("ls",),
    "retry": ("retry",),
}
# Commands that accept --select/--exclude/--selector.
SELECTING = {"build", "run", "test", "seed", "snapshot", "compile", "ls", "source freshness", "docs generate"}
# Commands that accept --full-refresh.
FULL_REFRESH = {"build", "run", "seed"}
# Commands that accept --defer with --state.
DEFERRING = {"build", "run", "test", "compile"}
# Commands that accept --threads (`dbt ls` selects but has no --threads option).
THREADED = (SELECTING - {"ls"}) | {"retry"}
# Commands whose run_results.json describes nodes that were built or tested.
BUILDING = {"build", "run", "test", "seed", "snapshot", "retry"}

ProfilesStrategy = Literal["blocks", "local"]
NodeTaskRuns = Literal["auto", "all", "states", "exceptions"]
"""Which dbt nodes get a Prefect task run when `per_node_tasks` is on: every node while dbt runs, through
prefect-dbt's task engine with asset events and each node's log lines ("all"); every node while dbt runs in lean
mode, recorded from dbt's events with its state alone ("states"; see `dbt2prefect.state_task_runs`); after dbt has
run in lean mode, only the nodes that failed, warned or were slow ("exceptions"; see
`dbt2prefect.exception_task_runs`); or, chosen per run before dbt runs by the project's size against the budget,
"states" or "exceptions" ("auto"; see `dbt2prefect.node_view`)."""


class RunParameters(BaseModel):
    """The parameters of one `run_dbt_wg` flow run.

    `target` is dbt's target name (`target.name`, as the dbt Cloud job had it); `connection` names the tenant
    target whose profile block supplies the connection (the job's dbt Cloud environment). Without
    `connection`, the target's own block is used. `dbt_cloud_job_id`/`dbt_cloud_job_name` name the dbt Cloud
    job a schedule replaces; they change nothing in the dbt commands, only how the run is named and tagged.
    `parity_candidate` marks a parity run of the job (named `parity-job-<id> ...`: nothing that follows the job's
    runs, chained jobs' triggers or notifications, reacts to it). `shadow_of_run` marks a shadow twin: the id of the
    dbt Cloud run it runs beside (named `shadow job-<id> ...` and tagged `shadow` instead of the job's tag).
    `env_vars` are set in dbt's environment for the run (a dbt Cloud job's resolved environment variables);
    `secret_env_vars` maps each secret variable (`DBT_ENV_SECRET*`) to the Prefect Secret block holding its value.
    `node_task_runs` chooses which nodes get a task run when `per_node_tasks` is on (`NodeTaskRuns`; None: the
    tenant's `[tenant.observability] node_task_runs`).

    Each line of `steps` is read by dbt's parser once, while the parameters are validated; `parsed_steps` carries
    the result to everything that runs them. The fields are the flow's signature (a test holds them equal).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    _parsed_steps: tuple[ParsedStep, ...] = PrivateAttr(default=())

    command: str = "build"
    target: str | None = None
    connection: str | None = None
    select: str | None = None
    exclude: str | None = None
    selector: str | None = None
    vars: str | None = None
    full_refresh: bool = False
    threads: int | None = Field(default=None, ge=1, le=64)
    state_path: str | None = None
    project_dir: str | None = None
    profiles_strategy: ProfilesStrategy = "blocks"
    steps: list[str] | None = None
    source_freshness: bool = False
    generate_docs: bool = False
    timeout_seconds: int | None = Field(default=None, ge=1)
    per_node_tasks: bool = True
    node_task_runs: NodeTaskRuns | None = None
    dbt_cloud_job_id: int | None = Field(default=None, ge=1)
    dbt_cloud_job_name: str | None = None
    parity_candidate: bool = False
    shadow_of_run: int | None = Field(default=None, ge=1)
    env_vars: dict[str, str] | None = None
    secret_env_vars: dict[str, str] | None = None

    @field_validator("env_vars", "secret_env_vars")
    @classmethod
    def _variable_names(cls, value: dict[str, str] | None, info: ValidationInfo) -> dict[str, str] | None:
        if not value:
            return None
        secret = info.field_name == "secret_env_vars"
        for name, item in value.items():
            problem = env_name_problem(name)
            if problem is not None:
                raise ValueError(problem)
            if name.startswith(SECRET_ENV_PREFIX) != secret:
                raise ValueError(
                    f"{name!r} must be in env_vars (only {SECRET_ENV_PREFIX}* names are secrets)"
                    if secret
                    else f"{name!r} is a secret: put the name of the Secret block holding it in secret_env_vars"
                )
            if "\0" in item or (secret and not item.strip()):
                raise ValueError(f"{name!r}: " + ("must name a Secret block" if secret else "holds a NUL byte"))
        return dict(sorted(value.items()))

    @field_validator("command")
    @classmethod
    def _known_command(cls, value: str) -> str:
        normal = " ".join(value.split())
        if normal not in COMMANDS:
            raise ValueError(f"{value!r} is not a supported dbt command; use one of: {', '.join(COMMANDS)}")
        return normal

    @field_validator("target", "connection")
    @classmethod
    def _plain_target(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or any(c in value for c in "/\\ ")):
            raise ValueError("must be a target name such as 'dev' or 'prod'")
        return value

    @field_validator("select", "exclude")
    @classmethod
    def _selection_words(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            check_selection(value, str(info.field_name))
        return value

    @field_validator("selector")
    @classmethod
    def _selector_name(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or value.startswith("-") or len(value.split()) != 1):
            raise ValueError("must be the name of one selector from selectors.yml, such as 'nightly'")
        return value

    @field_validator("vars")
    @classmethod
    def _vars_mapping(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parse_vars(value)
        return value

    @field_validator("steps")
    @classmethod
    def _steps_given(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("must hold at least one dbt command line, or be left out")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RunParameters:
        if self.node_task_runs is not None and not self.per_node_tasks:
            raise ValueError(
                "per_node_tasks is false (the lean mode: no task runs at all), so node_task_runs must be left out"
            )
        if self.steps is not None:
            self._parsed_steps = _parse_steps(self.steps)
            clashing = [name for name in ("select", "exclude", "selector") if getattr(self, name) is not None]
            if self.command != "build":
                clashing.insert(0, "command")
            if clashing:
                raise ValueError(
                    f"'steps' is set, so {', '.join(clashing)} must not be: put the selection inside the steps"
                )
            # dbt Cloud has no job-level vars or full refresh besides the steps: write them where they apply.
            flags = [name for name in ("vars", "full_refresh") if getattr(self, name)]
            if flags:
                raise ValueError(
                    f"'steps' is set, so {', '.join(flags)} must not be: write --vars/--full-refresh in the "
                    "steps that need them"
                )
            return self
        if self.command not in SELECTING and (self.select or self.exclude or self.selector):
            raise ValueError(f"command {self.command!r} takes no select/exclude/selector")
        if self.selector and (self.select or self.exclude):
            raise ValueError("use either 'selector' or 'select'/'exclude', not both (dbt ignores one of them)")
        if self.full_refresh and self.command not in FULL_REFRESH:
            raise ValueError(f"full_refresh applies to {', '.join(sorted(FULL_REFRESH))}, not {self.command!r}")
        return self

    @property
    def parsed_steps(self) -> tuple[ParsedStep, ...]:
        """`steps` as dbt's parser read them while validating (empty without steps). New steps need a new
        validation (`validate`), not `model_copy`, which would keep these."""
        return self._parsed_steps

    def to_api(self) -> dict[str, Any]:
        """The parameters as Prefect stores them (schedules, triggers, prefect.yaml, plan files): only what differs
        from the flow's defaults, but always `target`; sorted keys. Validating the result gives these parameters."""
        kept: dict[str, Any] = {}
        for name, info in sorted(type(self).model_fields.items()):
            value = getattr(self, name)
            if name == "target" or value != info.default:
                kept[name] = copy.copy(value)  # a list or dict of the frozen model stays its own
        return kept


ApiParameters = Annotated[RunParameters, PlainSerializer(RunParameters.to_api, return_type=dict[str, Any])]
"""RunParameters as a field of a plan or spec: it validates from the API's dict and serializes (JSON plan files,
the YAML renderings) as `to_api()` gives it."""


def _parse_steps(lines: list[str]) -> tuple[ParsedStep, ...]:
    """Parse each step once; a bad line is an error of the `steps` parameter."""
    try:
        return tuple(parse_step(line, where=f"steps[{index}]") for index, line in enumerate(lines))
    except DbtCommandError as exc:
        error = {"type": "value_error", "loc": ("steps",), "input": lines, "ctx": {"error": exc}}
        raise ValidationError.from_exception_data(RunParameters.__name__, [error]) from None  # type: ignore[list-item]


def parse_step(line: str, where: str = "step") -> ParsedStep:
    """Read one dbt command line (as in dbt Cloud's execute_steps) with the toolkit's one dbt parser.

    Raises:
        DbtCommandError: (a ValueError) dbt rejects the line, or it sets a flag the flow owns; the message
            starts with `where`.
    """
    try:
        step = parse_step_line(line, require_dbt=False)
        validate_step(step)
    except DbtCommandError as exc:
        raise DbtCommandError(exc.reason_code, f"{where}: {exc}") from None
    if step.sets("target"):
        name = str(step.options["target"])
        if not name.strip() or any(c in name for c in "/\\ "):
            raise DbtCommandError(
                ReasonCode.STEP_BAD_TARGET, f"{where}: {line!r}: --target {name!r} must be a target name such as 'prod'"
            )
    return step


def step_targets(params: RunParameters) -> set[str]:
    """Target names that steps set with their own `--target` (dbt Cloud: only target.name changes)."""
    names: set[str] = set()
    for step in params.parsed_steps:
        if step.sets("target"):
            names.add(str(step.options["target"]))
    return names


@dataclass(frozen=True)
class Invocation:
    """One dbt invocation of a run: its arguments and whether its failure fails the run."""

    args: list[str]
    label: str
    command: str
    fails_run: bool = True


def validate(raw: dict[str, Any]) -> RunParameters:
    """Validate flow parameters; the error names each bad parameter and how to fix it."""
    try:
        return RunParameters.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            name = ".".join(str(p) for p in err["loc"]) or "parameters"
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"parameter {name!r}: {message}" if name != "parameters" else message)
        raise ParameterError("invalid run_dbt_wg parameters: " + "; ".join(problems)) from None


def _common_flags(params: RunParameters, target: str, command: str) -> list[str]:
    flags = ["--target", target]
    if params.threads is not None and command in THREADED:
        flags += ["--threads", str(params.threads)]
    return flags


def plan_invocations(params: RunParameters, target: str, state_dir: str | None) -> list[Invocation]:
    """The dbt invocations a run performs, in order (dbt Cloud's order for checkbox steps).

    Args:
        params: validated parameters.
        target: the resolved target name.
        state_dir: local folder with the state artifacts (`--state`), when state_path is set.
    """
    invocations: list[Invocation] = []
    if params.source_freshness:
        args = ["source", "freshness", *_common_flags(params, target, "source freshness")]
        invocations.append(Invocation(args, "dbt source freshness (checkbox)", "source freshness", fails_run=False))
    if params.steps is not None:
        for step in params.parsed_steps:
            command = step.command
            args = list(step.args)
            if not step.sets("target"):
                args += ["--target", target]
            if params.threads is not None and command in THREADED and not step.sets("threads"):
                args += ["--threads", str(params.threads)]
            if state_dir and command in DEFERRING | SELECTING and not step.sets("state"):
                args += ["--state", state_dir]
                if command in {"build", "run"} and not step.sets("defer"):
                    args.append("--defer")
            invocations.append(Invocation(args, step.line, command))
    else:
        command = params.command
        args = [*COMMANDS[command], *_common_flags(params, target, command)]
        if params.select:
            args += ["--select", *params.select.split()]
        if params.exclude:
            args += ["--exclude", *params.exclude.split()]
        if params.selector:
            args += ["--selector", params.selector]
        if params.full_refresh:
            args.append("--full-refresh")
        if state_dir and command in SELECTING | DEFERRING:
            args += ["--state", state_dir]
            if command in {"build", "run"}:
                args.append("--defer")
        if params.vars and command not in {"clean", "deps"}:
            args += ["--vars", params.vars]
        invocations.append(Invocation(args, "dbt " + " ".join(args), command))
    if params.generate_docs:
        args = ["docs", "generate", *_common_flags(params, target, "docs generate")]
        invocations.append(Invocation(args, "dbt docs generate (checkbox)", "docs generate", fails_run=False))
    return invocations
