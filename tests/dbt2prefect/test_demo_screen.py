"""The demo shows its plan step in a few lines: one per job and the findings counted, not the whole plan."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from cli import demo_cmd
from dbt2prefect.tenant import load_tenant
from migration.dbt_cloud.models import Job
from migration.translate import build_plan
from sandbox.demo import StepResult, StepStatus

FIXTURES = Path(__file__).parents[1] / "migration" / "fixtures"


def test_the_plan_step_prints_a_line_per_job_and_counts_the_findings(monkeypatch: object) -> None:
    raw = json.loads((FIXTURES / "jobs_edge_cases.json").read_text())
    plan = build_plan([Job.from_api(item) for item in raw["data"]], load_tenant())
    assert len(plan.findings) > len({f.reason_code for f in plan.findings}), "the fixture repeats a reason"
    screen = Console(width=80, record=True, force_terminal=False)
    monkeypatch.setattr(demo_cmd, "console", screen)  # type: ignore[attr-defined]
    demo_cmd._Screen().finished(StepResult("plan", "Plan", StepStatus.OK, "planned", 0.1, plan))
    lines = screen.export_text().splitlines()
    assert len(lines) == 1 + len(plan.jobs) + 1  # the step, a line per job, the findings
    for job in plan.jobs:
        (line,) = [line for line in lines if line.startswith(f"       job {job.job_id} ")]
        assert job.job_name in line
    schedules = {s.slug: s for s in plan.schedules}
    nightly = next(j for j in plan.jobs if j.schedule_slug in schedules)
    assert f"schedule {nightly.schedule_slug}" in "\n".join(lines)
    findings = lines[-1]
    assert findings.startswith("       findings: ") and "dbt2prefect plan" in findings
    assert "manual step" not in "\n".join(lines[:-1]) and " x" in findings
