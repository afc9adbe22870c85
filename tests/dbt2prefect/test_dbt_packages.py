"""dbt packages of a run go into the run's private copy of the project; the team's own folder is never touched."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from app.workspace import Workspace
from dbt2prefect.dbt_packages import install_packages, private_copy
from dbt2prefect.errors import ExternalServiceError

pytestmark = pytest.mark.slow  # every test runs dbt (deps, parse or a sandbox run)

TENANTS = Path(__file__).resolve().parents[1] / "tenants"


def test_packages_are_installed_in_a_private_copy_and_cached_never_in_the_teams_folder(tmp_path: Path) -> None:
    team = tmp_path / "team"
    shutil.copytree(TENANTS / "shop", team / "shop")
    shutil.copytree(TENANTS / "shop_utils", team / "shop_utils")  # the `local: ../shop_utils` package
    own = team / "shop" / "dbt_packages" / "vendored"
    own.mkdir(parents=True)
    (own / "keep.txt").write_text("the team's own file")
    (team / "shop" / "target").mkdir()

    copy = private_copy(team / "shop", tmp_path / "run-1")
    assert not (copy / "dbt_packages").exists() and not (copy / "target").exists()
    assert install_packages(copy, tmp_path / "cache") == "dbt deps"
    installed = copy / "dbt_packages" / "shop_utils"
    assert (installed / "macros" / "cents_to_units.sql").is_file()
    assert os.path.realpath(installed) == str((team / "shop_utils").resolve())  # the team's package, in place
    assert (own / "keep.txt").read_text() == "the team's own file"
    assert sorted(p.name for p in (team / "shop" / "dbt_packages").iterdir()) == ["vendored"]

    again = private_copy(team / "shop", tmp_path / "run-2")
    assert install_packages(again, tmp_path / "cache") == "cache"
    assert (again / "dbt_packages" / "shop_utils" / "macros" / "cents_to_units.sql").is_file()


def test_an_unreachable_package_hub_is_named_with_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "dbt_project.yml").write_text("name: p\nversion: '1.0'\nconfig-version: 2\nprofile: default\n")
    (project / "packages.yml").write_text("packages:\n  - package: dbt-labs/dbt_utils\n    version: 1.3.0\n")
    monkeypatch.setenv("DBT_PACKAGE_HUB_URL", "http://127.0.0.1:9/")  # nothing listens on the discard port
    with pytest.raises(ExternalServiceError, match=r"could not reach the dbt package hub http://127\.0\.0\.1:9/"):
        install_packages(private_copy(project, tmp_path / "run"), tmp_path / "cache")
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["logs"], "nothing cached, only dbt deps' output kept"


def _project_with(tmp_path: Path, packages: str) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "dbt_project.yml").write_text("name: p\nversion: '1.0'\nconfig-version: 2\nprofile: default\n")
    (project / "packages.yml").write_text(packages)
    return project


def test_a_vendored_packages_own_hub_dependency_is_named_and_the_log_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vendored = tmp_path / "vendored"
    vendored.mkdir()
    (vendored / "dbt_project.yml").write_text("name: vendored\nversion: '1.0'\nconfig-version: 2\n")
    (vendored / "packages.yml").write_text("packages:\n  - package: dbt-labs/dbt_utils\n    version: 1.3.0\n")
    project = _project_with(tmp_path, "packages:\n  - local: ../vendored\n")
    monkeypatch.setenv("DBT_PACKAGE_HUB_URL", "http://127.0.0.1:9/")
    with pytest.raises(ExternalServiceError) as info:
        install_packages(private_copy(project, tmp_path / "run"), tmp_path / "cache")
    message = str(info.value)
    assert f"hub package dbt-labs/dbt_utils 1.3.0 (from local package {vendored.resolve()})" in message
    log = Path(message.rsplit("dbt deps output: ", 1)[1])
    assert log.is_file() and "Max retries exceeded" in log.read_text()


def test_an_unreachable_git_package_is_named_with_gits_reason(tmp_path: Path) -> None:
    project = _project_with(tmp_path, "packages:\n  - git: https://127.0.0.1:9/team/macros.git\n    revision: main\n")
    with pytest.raises(ExternalServiceError) as info:
        install_packages(private_copy(project, tmp_path / "run"), tmp_path / "cache")
    message = str(info.value)
    assert "git package https://127.0.0.1:9/team/macros.git" in message and "fatal: unable to access" in message
    assert Path(message.rsplit("dbt deps output: ", 1)[1]).is_file()


def test_a_project_with_packages_parses_partially_on_its_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dbt2prefect.dbt_run import lean_invoker
    from dbt2prefect.params import validate
    from dbt2prefect.run_job import execute
    from dbt2prefect.tenant import load_tenant

    tenants = tmp_path / "tenants"
    for name in ("shop", "shop_utils"):
        shutil.copytree(TENANTS / name, tenants / name, ignore=shutil.ignore_patterns("target", "dbt_packages"))
    shutil.copy(TENANTS / "shop.toml", tenants / "shop.toml")
    monkeypatch.setenv("DBT2PREFECT_RUNS_DIR", str(tmp_path / "runs"))
    tenant = load_tenant(tenants / "shop.toml").model_copy(update={"artifact_store_url": str(tmp_path / "store")})
    params = validate({"command": "ls", "profiles_strategy": "local", "target": "local"})
    logs = []
    for run in ("first", "second"):
        assert execute(params, tenant, run, invoker=lean_invoker, store=Workspace(tenant).store).success
        logs.append((tmp_path / "store" / "shop" / "shop_dbt" / "local" / run / "dbt.log").read_text())
    assert "Unable to do partial parsing because saved manifest not found" in logs[0]
    assert "Unable to do partial parsing" not in logs[1] and "Partial parsing enabled" in logs[1]


def test_a_deployment_runs_clone_parses_partially_where_the_last_clone_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each deployment run clones the code into a new folder; the worker's runs folder keeps one copy per project."""
    import subprocess

    from dbt2prefect.dbt_run import lean_invoker
    from dbt2prefect.params import validate
    from dbt2prefect.run_job import execute
    from dbt2prefect.tenant import load_tenant

    monkeypatch.setenv("DBT2PREFECT_RUNS_DIR", str(tmp_path / "runs"))
    params = validate({"command": "ls", "profiles_strategy": "local", "target": "local"})
    logs = []
    for run in ("first", "second"):
        clone = tmp_path / f"clone-{run}"
        for name in ("shop", "shop_utils"):
            shutil.copytree(
                TENANTS / name, clone / "tenants" / name, ignore=shutil.ignore_patterns("target", "dbt_packages")
            )
        shutil.copy(TENANTS / "shop.toml", clone / "tenants" / "shop.toml")
        # The warehouse is where it was for the last run (a relative DuckDB path would name another file per clone,
        # a profile change that dbt rightly parses again for).
        profiles = clone / "tenants" / "shop" / "profiles.yml"
        profiles.write_text(profiles.read_text().replace("target/local.duckdb", str(tmp_path / "local.duckdb")))
        subprocess.run(["git", "init", "-q", str(clone)], check=True)
        tenant = load_tenant(clone / "tenants" / "shop.toml").model_copy(
            update={"artifact_store_url": str(tmp_path / "store")}
        )
        outcome = execute(params, tenant, run, invoker=lean_invoker, store=Workspace(tenant).store, deployment_run=True)
        assert outcome.success
        logs.append((tmp_path / "store" / "shop" / "shop_dbt" / "local" / run / "dbt.log").read_text())
        assert not (clone / "tenants" / "shop" / "target").exists(), "dbt ran in the worker's copy, not the clone"
    assert "Unable to do partial parsing because saved manifest not found" in logs[0]
    assert "Unable to do partial parsing" not in logs[1] and "Partial parsing enabled" in logs[1]
    # One copy and one saved parse for the project, however many clones ran.
    assert len(list((tmp_path / "runs" / "projects").iterdir())) == 1
    assert len(list((tmp_path / "runs" / "parse-cache").iterdir())) == 1


def test_a_copy_is_made_on_request_without_packages_in_one_folder_for_every_checkout(tmp_path: Path) -> None:
    from dbt2prefect.dbt_packages import prepared_project_in_place

    copies = []
    for checkout in ("one", "two"):
        project = tmp_path / checkout / "analytics"
        (project / "models").mkdir(parents=True)
        (project / "dbt_project.yml").write_text("name: analytics\nprofile: analytics\n")
        (project / "models" / f"{checkout}.sql").write_text("select 1 as id\n")
        (tmp_path / checkout / ".git").mkdir()
        with prepared_project_in_place(project, tmp_path / "projects", tmp_path / "cache") as same:
            assert same == project, "without packages and without `copy`, dbt runs in the folder itself"
        with prepared_project_in_place(project, tmp_path / "projects", tmp_path / "cache", copy=True) as copy:
            assert copy != project and sorted(p.name for p in (copy / "models").iterdir()) == [f"{checkout}.sql"]
            copies.append(copy)
    assert copies[0] == copies[1], "two checkouts of the project at the same place in their repository share a folder"
    other = tmp_path / "three" / "elsewhere"
    shutil.copytree(tmp_path / "one" / "analytics", other)
    (tmp_path / "three" / ".git").mkdir()
    with prepared_project_in_place(other, tmp_path / "projects", tmp_path / "cache", copy=True) as copy:
        assert copy.parent.parent != copies[0].parent.parent, "another place in the repository is another project"


def test_concurrent_runs_get_copies_of_their_own(tmp_path: Path) -> None:
    from dbt2prefect.dbt_packages import prepared_project_in_place

    team = tmp_path / "team"
    shutil.copytree(TENANTS / "shop", team / "shop", ignore=shutil.ignore_patterns("target", "dbt_packages"))
    shutil.copytree(TENANTS / "shop_utils", team / "shop_utils")
    slots, cache = tmp_path / "projects", tmp_path / "cache"
    with (
        prepared_project_in_place(team / "shop", slots, cache) as one,
        prepared_project_in_place(team / "shop", slots, cache) as two,
    ):
        assert one != two and (one / "dbt_packages" / "shop_utils").exists() and (two / "dbt_project.yml").is_file()
    with prepared_project_in_place(team / "shop", slots, cache) as again:
        assert again == one, "a later run reuses the first free folder, so dbt's saved parse still fits"


def test_a_sandbox_dbt_cloud_run_that_fails_at_deps_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from sandbox.dbt_cloud.app import SandboxApp
    from sandbox.dbt_cloud.state import SandboxState
    from sandbox.demo import StepFailed, run_baselines

    project = tmp_path / "shop"
    shutil.copytree(TENANTS / "shop", project, ignore=shutil.ignore_patterns("target", "dbt_packages"))
    (project / "packages.yml").write_text("packages:\n  - package: dbt-labs/dbt_utils\n    version: 1.3.0\n")
    monkeypatch.setenv("DBT_PACKAGE_HUB_URL", "http://127.0.0.1:9/")  # nothing listens on the discard port
    state = SandboxState.from_files(TENANTS / "shop.jobs.json")
    app = SandboxApp(state, project_dir=project, warehouse_base=tmp_path / "warehouse", raw_catalog=None)
    try:
        with pytest.raises(StepFailed) as info:
            run_baselines(SimpleNamespace(app=app), [5001])  # type: ignore[arg-type]
    finally:
        app.close()
    assert "failed at Invoke dbt with `dbt deps`: " in str(info.value)
    assert "External connection exception" in str(info.value) and "127.0.0.1" in str(info.value)
