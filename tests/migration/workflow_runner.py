"""A stand-in for the GitHub Actions runner, for tests of the emitted CI workflow: which jobs an event starts
(`on:` and each job's `if:`), the `${{ }}` expressions it evaluates, and a job's steps run in order with bash.

It reads only the expression forms a workflow may hold (context lookups, string literals, `==`, `!=`, `&&`,
`||`, `!`, parentheses) and fails on anything else, so a test sees what GitHub would evaluate.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<op>==|!=|&&|\|\||!|\(|\))|(?P<name>[A-Za-z_][\w.-]*))")


class ExpressionError(ValueError):
    """An expression the stand-in does not read (GitHub might, or might not)."""


def _lookup(path: str, context: Mapping[str, Any]) -> Any:
    if path in ("true", "false"):
        return path == "true"
    value: Any = context
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def evaluate(expression: str, context: Mapping[str, Any]) -> Any:
    """The value of one expression (the text inside `${{ }}`, or an `if:`)."""
    python: list[str] = []
    position = 0
    text = expression.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise ExpressionError(f"cannot read {text[position:]!r} in {expression!r}")
        position = match.end()
        if match.group("str") is not None:
            python.append(repr(match.group("str")[1:-1].replace("''", "'")))
        elif match.group("name") is not None:
            python.append(repr(_lookup(match.group("name"), context)))
        else:
            python.append({"&&": " and ", "||": " or ", "!": " not "}.get(match.group("op"), match.group("op")))
    return eval("".join(python), {"__builtins__": {}})  # only literals and operators remain


def interpolate(text: str, context: Mapping[str, Any]) -> str:
    """A string with each `${{ expression }}` replaced by its value, as GitHub does before a step runs."""

    def value(match: re.Match[str]) -> str:
        result = evaluate(match.group(1), context)
        return "" if result is None else str(result).lower() if isinstance(result, bool) else str(result)

    return _EXPRESSION.sub(value, text)


def expressions(text: str) -> list[str]:
    """The expressions of a string, as GitHub would find them."""
    return [m.group(1).strip() for m in _EXPRESSION.finditer(text)]


def jobs_started(workflow: Mapping[str, Any], event: str, context: Mapping[str, Any]) -> list[str]:
    """The workflow's jobs an event starts: its `on:` filters (branches, activity types), then each job's `if:`."""
    triggers = workflow["on"]
    if event not in triggers:
        return []
    spec = triggers[event] or {}
    branch = context["github"]["base_ref"] if event == "pull_request" else context["github"]["ref_name"]
    if "branches" in spec and branch not in spec["branches"]:
        return []
    action = context["github"]["event"].get("action")
    if event == "pull_request" and action not in spec.get("types", ["opened", "synchronize", "reopened"]):
        return []
    return [name for name, job in workflow["jobs"].items() if "if" not in job or evaluate(job["if"], context)]


def pull_request_context(
    action: str, number: int, *, draft: bool = False, base: str = "main", head: str = "feature"
) -> dict[str, Any]:
    """The expression context of a `pull_request` event."""
    event = {
        "action": action,
        "number": number,
        "pull_request": {
            "number": number,
            "draft": draft,
            "head": {"sha": f"{number:040x}"},
            "base": {"sha": "0" * 40},
        },
    }
    github = {"event_name": "pull_request", "event": event, "base_ref": base, "head_ref": head, "run_id": 9000 + number}
    return {"github": github, "secrets": {}}


def push_context(branch: str = "main") -> dict[str, Any]:
    """The expression context of a `push` event."""
    github = {
        "event_name": "push",
        "event": {},
        "ref": f"refs/heads/{branch}",
        "ref_name": branch,
        "sha": "f" * 40,
        "run_id": 9999,
    }
    return {"github": github, "secrets": {}}


@dataclass(frozen=True)
class StepRun:
    name: str
    returncode: int
    output: str


Handler = Callable[[Mapping[str, Any], dict[str, str]], bool]
"""Called before a step with the step and its environment; True when it did the step itself (`uses:` steps)."""


def run_job(
    job: Mapping[str, Any],
    context: Mapping[str, Any],
    workspace: Path,
    *,
    handler: Handler,
    base_env: Mapping[str, str] | None = None,
) -> tuple[bool, list[StepRun]]:
    """Run a job's steps in order in `workspace` (bash -e, as GitHub runs `run:`): (succeeded, each step run).

    A failed step ends the job unless it has `continue-on-error: true`.
    """
    job_env = {k: interpolate(str(v), context) for k, v in (job.get("env") or {}).items()}
    runs: list[StepRun] = []
    for step in job["steps"]:
        env = {**os.environ, **(base_env or {}), **job_env}
        env.update({k: interpolate(str(v), context) for k, v in (step.get("env") or {}).items()})
        if handler(step, env):
            continue
        if "run" not in step:
            raise AssertionError(f"no handler for step {step}")
        script = interpolate(str(step["run"]), context)
        done = subprocess.run(
            ["bash", "-e", "-c", script], cwd=workspace, env=env, capture_output=True, text=True, timeout=600
        )
        runs.append(StepRun(str(step.get("name", script)), done.returncode, done.stdout + done.stderr))
        if done.returncode != 0 and not step.get("continue-on-error"):
            return False, runs
    return True, runs
