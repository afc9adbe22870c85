"""Which dbt failures a run retries by itself: only transient ones, from dbt's own messages (issue 31)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbt2prefect.dbt_run import NodeResult, StepOutcome, transient_cause
from dbt2prefect.errors import ConfigError
from dbt2prefect.tenant import load_tenant, settings_path


def _step(*nodes: tuple[str, str], error: str | None = None) -> StepOutcome:
    outcome = StepOutcome(0, "dbt build", "build", ["build"], Path("t"), fails_run=True, success=False, error=error)
    outcome.nodes = [NodeResult(f"model.p.m{i}", "model", f"m{i}", s, 0.1, m, 0) for i, (s, m) in enumerate(nodes)]
    return outcome


@pytest.mark.parametrize(
    ("step", "cause"),
    [
        (_step(error='IO Error: Could not set lock on file "/w.duckdb": Conflicting lock is held'), "lock"),
        (
            _step(("error", "Database Error\n  000630 (57014): Statement reached its statement or warehouse timeout")),
            "timeout",
        ),
        (
            _step(("error", "Database Error: server closed the connection unexpectedly"), ("skipped", "")),
            "lost connection",
        ),
        (_step(("error", "deadlock detected"), ("error", "SSL SYSCALL error: EOF detected")), "lock, lost connection"),
        # Deterministic: SQL and compilation errors, failing tests, a mix with one deterministic error.
        (_step(("error", "Catalog Error: Table with name made_by_hook does not exist!")), None),
        (_step(("error", "Compilation Error in model m0: 'ref' is undefined")), None),
        (_step(("fail", "Got 3 results, configured to fail if != 0")), None),
        (_step(("error", "deadlock detected"), ("error", "Binder Error: column x not found")), None),
        (_step(error="Could not find profile named 'x'"), None),
        (_step(), None),
    ],
)
def test_transient_cause(step: StepOutcome, cause: str | None) -> None:
    assert transient_cause([step]) == cause


def test_a_passing_run_has_no_cause() -> None:
    ok = _step()
    ok.success = True
    assert transient_cause([ok]) is None


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ("transient = 9", "retries.transient: Input should be less than or equal to 5"),
        ("transient = true", "retries.transient: Input should be a valid integer"),
        ("delay_seconds = -1", "retries.delay_seconds: Input should be greater than or equal to 0"),
        ("attempts = 2", "retries.attempts: Extra inputs are not permitted"),
    ],
)
def test_bad_retry_settings_are_named(table: str, problem: str, tmp_path: Path) -> None:
    text = settings_path().read_text(encoding="utf-8")
    settings = tmp_path / "t.toml"
    project = settings_path().parent / "dbt_williamgrant"
    text = text.replace('project_dir = "dbt_williamgrant"', f'project_dir = "{project}"')
    settings.write_text(f"{text}\n[tenant.retries]\n{table}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_tenant(settings)
    assert problem in str(info.value) and str(settings) in str(info.value)
