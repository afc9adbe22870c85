"""Bad input, round 3 (issue 24), what comes in as data: chained-job cycles, job ids in two spellings, a saved
page of a longer jobs list, another account's inventory, environment variable names dbt Cloud refuses, a
non-numeric project key, and data that lands in CSV, Markdown and shell lines.

As in test_bad_input_matrix.py: each CLI case asserts the exit code, a message naming the input and the fix, no
traceback, and that nothing was written.
"""

from __future__ import annotations

import csv
import io
import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from cli.app import app
from cli.common import render_rows
from dbt2prefect.errors import ParameterError
from dbt2prefect.escaping import csv_cell, markdown_cell, shell_line
from dbt2prefect.params import RunParameters, validate
from dbt2prefect.run_env import env_name_problem, run_environment
from dbt2prefect.tenant import REPO_ROOT
from migration.dbt_cloud.models import Job, Notification
from migration.env_vars import secret_setup_command

EDGE_JOBS = REPO_ROOT / "tests" / "migration" / "fixtures" / "jobs_edge_cases.json"
SHOP_JOBS = REPO_ROOT / "tests" / "tenants" / "shop.jobs.json"
TENANT_TOML = REPO_ROOT / "tenants" / "dbt_williamgrant.toml"
runner = CliRunner()


# ------------------------------------------------------------------------------------------------ helpers


def _cli(args: list[str]) -> Result:
    return runner.invoke(app, args)


def _assert_bad_input(result: Result, *names: str, code: int = 2) -> None:
    """The exit code, a handled exit, no traceback, every name in the message, and the message on one line."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    for name in names:
        assert name in result.output, f"{name!r} not named in: {result.output}"
    if code == 2:
        assert result.stdout == "", "nothing may be printed as a result of bad input"
        assert result.stderr.startswith("error:") and result.stderr.count("error:") == 1, result.stderr


def _base() -> dict[str, Any]:
    return dict(json.loads(EDGE_JOBS.read_text(encoding="utf-8"))["data"][0])


ACCOUNT = _base()["account_id"]
PROJECT = _base()["project_id"]


def _job(job_id: int, *, after: int | None = None, **changes: Any) -> dict[str, Any]:
    """A job that translates cleanly; `after`: the job it is chained to (runs when that one succeeds)."""
    job = {**_base(), "id": job_id, "name": f"Job {job_id}", **changes}
    if after is not None:
        job["triggers"] = {**job["triggers"], "schedule": False}
        job["job_type"] = "other"
        job["job_completion_trigger_condition"] = {
            "condition": {"job_id": after, "project_id": PROJECT, "statuses": [10]}
        }
    return job


def _inventory(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"format": "dbt2prefect-inventory", "version": 1, "account_id": ACCOUNT, "jobs": [{"raw": j} for j in jobs]}


def _write(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc, encoding="utf-8")
    return path


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _plan(path: Path, *more: str) -> tuple[Result, dict[str, Any] | None]:
    result = _cli(["plan", "--from-file", str(path), "--json", *more])
    return result, (json.loads(result.stdout) if result.stdout.strip() else None)


def _tenant_acknowledging(tmp_path: Path, *keys: str) -> Path:
    text = TENANT_TOML.read_text(encoding="utf-8").replace(
        'project_dir = "dbt_williamgrant"', f'project_dir = "{REPO_ROOT / "tenants" / "dbt_williamgrant"}"'
    )
    assert "acknowledged_findings = []" in text
    text = text.replace("acknowledged_findings = []", f"acknowledged_findings = {json.dumps(list(keys))}", 1)
    return _write(tmp_path / "acknowledging.toml", text)


# ------------------------------------------------------------------------------------------------ 1. chain cycles

CYCLES: dict[str, tuple[list[dict[str, Any]], list[int], str]] = {
    "a job chained to itself": ([_job(201, after=201)], [201], "job 201 (Job 201) -> job 201 (Job 201)"),
    "two jobs chained to each other": (
        [_job(201, after=202), _job(202, after=201)],
        [201, 202],
        "job 201 (Job 201) -> job 202 (Job 202) -> job 201 (Job 201)",
    ),
    "three jobs in a ring": (
        [_job(201, after=203), _job(202, after=201), _job(203, after=202)],
        [201, 202, 203],
        "job 201 (Job 201) -> job 202 (Job 202) -> job 203 (Job 203) -> job 201 (Job 201)",
    ),
    "a ring behind a scheduled job's chain": (
        # 205 runs after the scheduled 101 and is no part of the ring 201 -> 202 -> 201.
        [_job(101), _job(205, after=101), _job(201, after=202), _job(202, after=201)],
        [201, 202],
        "job 201 (Job 201) -> job 202 (Job 202) -> job 201 (Job 201)",
    ),
}


@pytest.mark.parametrize("case", list(CYCLES))
def test_chain_cycles_are_blockers_naming_the_jobs(case: str, tmp_path: Path) -> None:
    jobs, members, chain = CYCLES[case]
    result, plan = _plan(_write(tmp_path / "inv.json", _inventory(jobs)))
    assert result.exit_code == 1, result.output  # a check failed: the plan is blocked
    assert plan is not None
    cycle = [f for f in plan["findings"] if f["reason_code"] == "job_chain_cycle"]
    assert sorted(f["job_id"] for f in cycle) == members
    assert all(chain in f["message"] and f["severity"] == "blocker" for f in cycle)
    assert all("remove the completion trigger" in f["manual_step"] for f in cycle)
    assert sorted(plan["blocking"]) == sorted(f"job_chain_cycle:{m}" for m in members)
    assert [t["job_id"] for t in plan["triggers"]] == ([205] if 205 in {j["id"] for j in jobs} else [])
    assert f"job_chain_cycle:{members[0]}" in result.stderr


def test_apply_refuses_a_plan_with_a_cycle(tmp_path: Path) -> None:
    inventory = _write(tmp_path / "inv.json", _inventory([_job(201, after=202), _job(202, after=201)]))
    result = _cli(["apply", "--from-file", str(inventory)])
    _assert_bad_input(result, "job_chain_cycle:201", "job_chain_cycle:202", "acknowledged_findings", code=1)
    assert _files(tmp_path) == ["inv.json"]


def test_a_deleted_job_breaks_the_chain(tmp_path: Path) -> None:
    jobs = [_job(201, after=202), _job(202, after=201, state=2)]
    _result, plan = _plan(_write(tmp_path / "inv.json", _inventory(jobs)))
    assert plan is not None and not [f for f in plan["findings"] if f["reason_code"] == "job_chain_cycle"]


def test_an_acknowledged_cycle_plans_no_trigger(tmp_path: Path) -> None:
    tenant = _tenant_acknowledging(tmp_path, "job_chain_cycle:201", "job_chain_cycle:202")
    inventory = _write(tmp_path / "inv.json", _inventory([_job(201, after=202), _job(202, after=201)]))
    result, plan = _plan(inventory, "--tenant-file", str(tenant))
    assert plan is not None and result.exit_code == 0, result.output
    assert plan["triggers"] == [] and {j["status"] for j in plan["jobs"]} == {"on_demand"}


# ------------------------------------------------------------------------------------------------ 2. job ids

ID_CASES: dict[str, tuple[list[dict[str, Any]], tuple[str, ...]]] = {
    "number and string": (
        [_job(301), _job(0, id="301")],
        ("job #1", "has id 301, like job #0", "remove the duplicate"),
    ),
    "leading zero": ([_job(301), _job(0, id="0301")], ("job #1", "has id 301", "dbt2prefect export")),
    "id true": ([_job(0, id=True)], ("job #0", "dbt Cloud id")),
    "id with letters": ([_job(0, id="30a")], ("job #0", "'30a'")),
    "negative id": ([_job(0, id=-4)], ("job #0", "not -4")),
    "fractional id": ([_job(0, id=3.5)], ("job #0", "dbt Cloud id")),
    "chain to a non-id": (
        [_job(301, job_completion_trigger_condition={"condition": {"job_id": "x"}})],
        ("job_id",),
    ),
}


@pytest.mark.parametrize("case", list(ID_CASES))
def test_job_ids_in_two_spellings_or_not_ids(case: str, tmp_path: Path) -> None:
    jobs, names = ID_CASES[case]
    path = _write(tmp_path / "inv.json", _inventory(jobs))
    _assert_bad_input(_cli(["plan", "--from-file", str(path), "--json"]), "inv.json", *names)
    # The saved jobs-list shape goes through the same checks.
    listed = _write(tmp_path / "list.json", {"status": {"code": 200}, "data": jobs})
    _assert_bad_input(_cli(["plan", "--from-file", str(listed), "--json"]), "list.json", *names)


def test_ids_are_one_int_at_the_model_boundary() -> None:
    assert Job.from_api({**_base(), "id": "0301", "account_id": str(ACCOUNT)}).id == 301
    notification = Notification.from_api({"id": "7", "type": 2, "on_success": ["301", 302]})
    assert notification.on_success == [301, 302]


def test_the_plan_itself_refuses_one_job_twice() -> None:
    from dbt2prefect.tenant import load_tenant
    from migration.errors import InventoryError
    from migration.translate import build_plan

    with pytest.raises(InventoryError, match="301 appear more than once"):
        build_plan([Job.from_api(_job(301)), Job.from_api(_job(0, id="301"))], load_tenant())


# ------------------------------------------------------------------------------------------------ 3. saved pages


def _page(count: int, total: int, **filters: Any) -> dict[str, Any]:
    jobs = [_job(400 + i) for i in range(count)]
    return {
        "status": {"code": 200, "is_success": True},
        "data": jobs,
        "extra": {
            "filters": {"limit": 100, "offset": 0, "state": "all", "account_id": ACCOUNT, **filters},
            "order_by": "id",
            "pagination": {"count": count, "total_count": total},
        },
    }


PAGE_CASES: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "first page of 250": (_page(9, 250), ("holds 9 of the 250 jobs", "total_count", "dbt2prefect export")),
    "the second page": (_page(3, 103, offset=100), ("holds 3 of the 103 jobs", "dbt2prefect export")),
    "a later page alone": (_page(3, 3, offset=100), ("offset=100", "only part", "dbt2prefect export")),
    "a name filter": (_page(2, 2, name__icontains="nightly"), ("name__icontains='nightly'", "dbt2prefect export")),
    "one job by pk": (_page(1, 1, pk=400), ("pk=400", "dbt2prefect export")),
}


@pytest.mark.parametrize("case", list(PAGE_CASES))
def test_a_saved_part_of_the_jobs_list_is_refused(case: str, tmp_path: Path) -> None:
    doc, names = PAGE_CASES[case]
    path = _write(tmp_path / "page.json", doc)
    _assert_bad_input(_cli(["plan", "--from-file", str(path)]), "page.json", *names)
    assert _files(tmp_path) == ["page.json"]


@pytest.mark.parametrize("doc", [_page(3, 3), {k: v for k, v in _page(3, 3).items() if k != "extra"}])
def test_a_whole_jobs_list_still_plans(doc: dict[str, Any], tmp_path: Path) -> None:
    result, plan = _plan(_write(tmp_path / "all.json", doc))
    assert result.exit_code in (0, 1) and plan is not None, result.output
    assert len(plan["jobs"]) == 3


def test_the_readme_saves_jobs_with_export_not_one_page() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert "jobs/?state=all&limit=100" not in readme
    assert "dbt2prefect export --tenant-file tenants/<name>.toml --output tenants/<name>.jobs.json" in readme


def test_the_sandbox_serves_the_jobs_of_an_exported_inventory(tmp_path: Path) -> None:
    from sandbox.dbt_cloud.state import SandboxState

    path = _write(tmp_path / "inv.json", _inventory([_job(501), _job(502)]))
    assert sorted(SandboxState.from_files(path).jobs) == [501, 502]


# ------------------------------------------------------------------------------------------------ 4. accounts


def test_another_accounts_inventory_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "inv.json", {**_inventory([_job(601)]), "account_id": 1})
    result = _cli(["plan", "--from-file", str(path)])
    _assert_bad_input(result, "inv.json", "account 1", f"account {ACCOUNT}", "--tenant-file", "dbt2prefect export")


@pytest.mark.parametrize("command", ["plan", "apply", "emit"])
def test_another_accounts_jobs_list_is_refused_by_every_command(command: str, tmp_path: Path) -> None:
    out = ["--output", str(tmp_path / "prefect.yaml")] if command == "emit" else []
    result = _cli([command, "--from-file", str(SHOP_JOBS), *out])
    _assert_bad_input(result, "shop.jobs.json", "account 1001", f"account {ACCOUNT}")
    assert _files(tmp_path) == []


def test_the_jobs_list_of_the_tenants_own_account_plans() -> None:
    result = _cli(["plan", "--from-file", str(SHOP_JOBS), "--tenant-file", str(REPO_ROOT / "tests/tenants/shop.toml")])
    assert result.exit_code in (0, 1) and "account" not in result.stderr, result.output


# ------------------------------------------------------------------------------------------------ 5. env var names


def _with_variables(names: dict[str, str], key: str = str(PROJECT)) -> dict[str, Any]:
    variables = {name: {"project": {"id": i + 1, "value": value}} for i, (name, value) in enumerate(names.items())}
    return _inventory([_job(701)]) | {
        "environment_variables": {key: {"environments": ["project"], "variables": variables}}
    }


HOSTILE_SECRET = "DBT_ENV_SECRET_X$(touch pwned)"
BAD_NAMES = [
    "PATH",
    "LD_PRELOAD",
    "PYTHONPATH",
    "HTTPS_PROXY",
    "SSL_CERT_FILE",
    "AWS_SECRET_ACCESS_KEY",
    "PREFECT_API_URL",
    "DBT_PROFILES_DIR",
    "DBT_ENGINE_TARGET_PATH",
    "DBT_PROJECT_DIR",
    "dbt_lower",
    "DBT_",
    "DBT_X-Y",
    "DBT_É",
    HOSTILE_SECRET,
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_name_dbt_cloud_refuses_is_a_blocker_and_never_a_parameter(name: str, tmp_path: Path) -> None:
    path = _write(tmp_path / "inv.json", _with_variables({name: "/tmp/evil", "DBT_WG_REGION": "uk"}))
    result, plan = _plan(path)
    assert result.exit_code == 1 and plan is not None, result.output
    (finding,) = [f for f in plan["findings"] if f["reason_code"] == "env_var_name"]
    assert finding["severity"] == "blocker" and repr(name) in finding["message"]
    assert "env_var_name:701" in finding["manual_step"]
    (job,) = plan["jobs"]
    assert job["parameters"]["env_vars"] == {"DBT_WG_REGION": "uk"}  # the good name still reaches dbt
    assert "secret_env_vars" not in job["parameters"]
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


@pytest.mark.parametrize("name", BAD_NAMES)
def test_the_flow_refuses_the_same_names_before_dbt_starts(name: str) -> None:
    field = "secret_env_vars" if name.startswith("DBT_ENV_SECRET") else "env_vars"
    with pytest.raises(ParameterError) as caught:
        validate({field: {name: "some-block"}})
    assert caught.value.exit_code == 2 and repr(name) in str(caught.value)
    # Defence in depth: parameters built without validation are checked again before the environment is set.
    unchecked = RunParameters.model_construct(env_vars={name: "x"}, secret_env_vars=None)
    with pytest.raises(ParameterError, match="parameter 'env_vars'"):
        run_environment(unchecked)


@pytest.mark.parametrize("name", ["DBT_WG_REGION", "DBT_ENV_SECRET_FX_API_KEY", "DBT_ENV_CUSTOM_ENV_TEAM", "DBT_1"])
def test_names_dbt_cloud_accepts_pass(name: str) -> None:
    assert env_name_problem(name) is None


def test_the_env_var_check_is_one_function() -> None:
    # Plan (translate), flow parameters and the run's environment all call `env_name_problem`.
    for module in ("migration/translate.py", "dbt2prefect/params.py", "dbt2prefect/run_env.py"):
        assert "env_name_problem(" in (REPO_ROOT / module).read_text(encoding="utf-8"), module


# ------------------------------------------------------------------------------------------------ 6. project keys


@pytest.mark.parametrize("key", ["abc", "", "12a", "-5", "1.0"])
def test_a_project_key_that_is_not_an_id(key: str, tmp_path: Path) -> None:
    path = _write(tmp_path / "inv.json", _with_variables({"DBT_WG_REGION": "uk"}, key=key))
    _assert_bad_input(_cli(["plan", "--from-file", str(path)]), "inv.json", f"key {key!r}", "project id")


# ------------------------------------------------------------------------------------------------ 7. CSV, Markdown

FORMULAS = ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)", "\tTAB", "\rCR"]
HTML = '<img src=x onerror="alert(1)">'


@pytest.mark.parametrize("name", FORMULAS)
def test_plan_csv_cells_are_never_formulas(name: str, tmp_path: Path) -> None:
    path = _write(tmp_path / "inv.json", _inventory([_job(801, name=name)]))
    result = _cli(["plan", "--from-file", str(path), "--format", "csv"])
    assert result.exit_code in (0, 1), result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows[0]["job_name"] == "'" + name
    assert not any(str(cell).startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row.values())


def test_plan_markdown_cells_hold_no_html(tmp_path: Path) -> None:
    path = _write(tmp_path / "inv.json", _inventory([_job(802, name=HTML + "\n| x")]))
    result = _cli(["plan", "--from-file", str(path), "--format", "markdown"])
    assert result.exit_code in (0, 1), result.output
    assert "<img" not in result.stdout and "&lt;img" in result.stdout
    assert len(result.stdout.splitlines()) == 3  # header, rule, one row: the newline did not split the row


@pytest.mark.parametrize("fmt", ["csv", "markdown"])
def test_every_row_renderer_escapes_with_the_formats_one_function(fmt: str) -> None:
    # plan, status and parity all render rows with `render_rows`.
    out = render_rows([{"a": "=1+1", "b": HTML, "c": -3}], fmt)  # type: ignore[arg-type]
    if fmt == "csv":
        assert list(csv.reader(io.StringIO(out)))[1] == ["'=1+1", HTML, "-3"]
    else:
        assert "<img" not in out and markdown_cell(HTML) in out
    for module in ("cli/plan_cmd.py", "cli/cutover_cmd.py", "cli/parity_cmd.py"):
        assert "render_rows(" in (REPO_ROOT / module).read_text(encoding="utf-8"), module


def test_the_run_summary_markdown_holds_no_html() -> None:
    from dbt2prefect.dbt_run import NodeResult
    from dbt2prefect.summary import RunSummary, to_markdown

    node = NodeResult(
        unique_id="model.p.m", resource_type="model", name="m", status="error", execution_time=1.0, message=HTML, step=1
    )
    summary = RunSummary("dev", False, [], {"error": 1}, [node], [], [node], 1.0)
    text = to_markdown(summary, None)
    assert "<img" not in text and "&lt;img" in text


def test_csv_cells_keep_numbers_and_plain_text() -> None:
    assert csv_cell(-3) == -3 and csv_cell("plain") == "plain" and csv_cell(True) is True


# ------------------------------------------------------------------------------------------------ 8. shell lines


def _run_in_bash(line: str, cwd: Path, *stubs: str) -> list[list[str]]:
    """Run `line` in bash with each of `stubs` replaced by a function printing its arguments; their argv lists."""
    functions = "".join(f"{stub}() {{ printf '%s\\0' {stub} \"$@\"; printf '\\1'; }}; " for stub in stubs)
    done = subprocess.run(["bash", "-c", functions + line], cwd=cwd, capture_output=True, text=True, timeout=30)
    calls = [call.split("\0")[:-1] for call in done.stdout.split("\1") if call]
    return calls


def test_a_hostile_secret_name_in_the_pasted_line_stays_a_word(tmp_path: Path) -> None:
    line = secret_setup_command(HOSTILE_SECRET, "blk")
    calls = _run_in_bash(line, tmp_path, "read", "export", "dbt2prefect")
    assert calls[0] == ["read", "-rs", HOSTILE_SECRET] and calls[1] == ["export", HOSTILE_SECRET]
    assert calls[2] == ["dbt2prefect", "blocks", "secret", "blk", "--from-env", HOSTILE_SECRET]
    assert not (tmp_path / "pwned").exists()


def test_a_job_name_in_the_run_on_demand_line_stays_a_word(tmp_path: Path) -> None:
    name = "x'; touch pwned; echo '$(touch pwned2)"
    job = _job(901, name=name, triggers={**_base()["triggers"], "schedule": False}, job_type="other")
    result, plan = _plan(_write(tmp_path / "inv.json", _inventory([job])))
    assert plan is not None, result.output
    (finding,) = [f for f in plan["findings"] if f["reason_code"] == "no_trigger"]
    line = finding["manual_step"].removeprefix("run it on demand: ")
    (call,) = _run_in_bash(line, tmp_path, "prefect")
    assert call[:4] == ["prefect", "deployment", "run", "run_dbt_wg/dbt_wg"]
    assert json.loads(call[5])["dbt_cloud_job_name"] == name
    assert _files(tmp_path) == ["inv.json"]


def test_shell_lines_are_one_function() -> None:
    assert shlex.split(shell_line(["a b", "'", "$(x)"])) == ["a b", "'", "$(x)"]
