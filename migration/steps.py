"""dbt Cloud execute_steps → `run_dbt_wg` parameters.

Lines are read by the toolkit's one parser of dbt command lines (`dbt2prefect.dbt_cli`, dbt's own click CLI),
the same one the flow validates its `steps` with and parity selects nodes with.
"""

from __future__ import annotations

from typing import Any

from dbt2prefect.dbt_cli import ParsedStep, flatten
from dbt2prefect.escaping import shell_line
from dbt2prefect.params import COMMANDS

# click parameter name → flow parameter. Anything else on a single step sends the job to `steps`.
MAPPED_OPTIONS = ("select", "exclude", "selector", "vars", "full_refresh", "target", "threads")
# Options that point at files in dbt Cloud's run environment.
STATE_OPTIONS = ("state", "defer", "defer_state", "favor_state")


def _joined(value: Any) -> str:
    """`--select a b --select c` arrives as [('a', 'b'), ('c',)]; the flow takes 'a b c'."""
    return " ".join(flatten(value))


def unmapped_flags(step: ParsedStep) -> list[str]:
    """Flags of a step that have no flow parameter (sorted), e.g. `--fail-fast`."""
    return sorted(step.flags[name] for name in step.options if name not in MAPPED_OPTIONS)


def step_parameters(step: ParsedStep) -> dict[str, Any] | None:
    """The flow parameters that reproduce one step, or None when the step needs `steps` (a flag or command
    without a parameter). Only parameters the step sets are returned."""
    # The flow's `command` is dbt's command path as the parser resolves it ('source freshness', 'ls').
    if step.command not in COMMANDS or unmapped_flags(step):
        return None
    params: dict[str, Any] = {"command": step.command}
    for name in ("select", "exclude"):
        if name in step.options:
            params[name] = _joined(step.options[name])
    for name in ("selector", "vars", "target"):
        if name in step.options:
            params[name] = step.options[name]
    if step.options.get("full_refresh"):
        params["full_refresh"] = True
    if "threads" in step.options:
        params["threads"] = int(step.options["threads"])
    return params


def render_step(params: dict[str, Any]) -> str:
    """The dbt command line for single-command parameters (the inverse of `step_parameters`)."""
    args = ["dbt", *str(params.get("command", "build")).split()]
    for name in ("select", "exclude"):
        if params.get(name):
            args += [f"--{name}", *str(params[name]).split()]
    for name in ("selector", "vars", "target"):
        if params.get(name) is not None:
            args += [f"--{name}", str(params[name])]
    if params.get("full_refresh"):
        args.append("--full-refresh")
    if params.get("threads") is not None:
        args += ["--threads", str(params["threads"])]
    return shell_line(args)
