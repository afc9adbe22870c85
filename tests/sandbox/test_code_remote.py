"""The sandbox's code remote: what a worker clones is the checkout as it is, with the stack's settings in it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dbt2prefect.tenant import REPO_ROOT, load_tenant
from sandbox.code_remote import CodeRemoteError, create_code_remote
from sandbox.dbt_cloud import SandboxDbtCloud
from sandbox.stack import make_code_remote, prepare_workdir, write_tenant_file
from sandbox.worker import _worker_environment


def _git(folder: Path, *args: str) -> None:
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", *identity, *args], cwd=folder, check=True, capture_output=True)


def _clone(url: str, destination: Path) -> Path:
    subprocess.run(["git", "clone", "-q", url, str(destination)], check=True, capture_output=True)
    return destination


def test_the_snapshot_holds_uncommitted_changes_and_no_ignored_files(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / ".gitignore").write_text("*.duckdb\n")
    (source / "flow.py").write_text("committed\n")
    (source / "gone.py").write_text("deleted after the commit\n")
    _git(source, "init", "-q", "-b", "main")
    _git(source, "add", "-A")
    _git(source, "commit", "-q", "-m", "first")
    (source / "flow.py").write_text("changed, not committed\n")
    (source / "new.py").write_text("untracked\n")
    (source / "gone.py").unlink()
    (source / "raw.duckdb").write_text("ignored\n")

    remote = create_code_remote(tmp_path / "code", tmp_path / "code.git", source=source)
    clone = _clone(remote.url, tmp_path / "clone")

    assert sorted(p.name for p in clone.iterdir() if p.name != ".git") == [".gitignore", "flow.py", "new.py"]
    assert (clone / "flow.py").read_text() == "changed, not committed\n"
    with pytest.raises(CodeRemoteError, match="exists already"):
        create_code_remote(tmp_path / "code", tmp_path / "other.git", source=source)


def test_the_stack_settings_are_committed_where_a_clone_reads_them_with_its_own_project(tmp_path: Path) -> None:
    paths = prepare_workdir(tmp_path / "work", fresh=True)
    remote = make_code_remote(paths)
    with SandboxDbtCloud.start() as cloud:
        written = write_tenant_file(paths, cloud, bucket="s3://sandbox-bucket", remote=remote)
    assert written == paths.code / "tenants" / "dbt_williamgrant.toml"

    clone = _clone(remote.url, tmp_path / "clone")
    tenant = load_tenant(clone / "tenants" / "dbt_williamgrant.toml")
    # Paths of this repository are the clone's own files; nothing points back into this checkout.
    assert tenant.project_dir == clone / "tenants" / "dbt_williamgrant"
    assert tenant.local_profiles_dir is not None and tenant.local_profiles_dir.is_relative_to(clone)
    assert str(REPO_ROOT) not in (clone / "tenants" / "dbt_williamgrant.toml").read_text().split("\n", 2)[2]
    assert (tenant.artifact_store_url, tenant.ledger_url) == (
        "s3://sandbox-bucket/artifacts",
        "s3://sandbox-bucket/ledger",
    )
    assert tenant.code_storage is not None and tenant.code_storage.repository == paths.code_remote.as_uri()
    assert tenant.runtime.dependencies == "preinstalled"  # the sandbox's process pool uses this environment

    # A new stack in the same work folder replaces the sandbox's own remote.
    assert make_code_remote(paths).url == remote.url


def test_a_worker_host_has_none_of_the_callers_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBT2PREFECT_TENANT_FILE", str(REPO_ROOT / "tenants" / "dbt_williamgrant.toml"))
    monkeypatch.setenv("DBT2PREFECT_RUNS_DIR", str(tmp_path / "operator-runs"))
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    folder = tmp_path / "worker"

    env = _worker_environment("http://127.0.0.1:1/api", folder, {"DBT2PREFECT_WAREHOUSE_DIR": "/shared/warehouse"})

    assert "DBT2PREFECT_TENANT_FILE" not in env and "PYTHONPATH" not in env
    assert env["DBT2PREFECT_RUNS_DIR"] == str(folder / "runs") and env["TMPDIR"] == str(folder / "tmp")
    assert env["DBT2PREFECT_WAREHOUSE_DIR"] == "/shared/warehouse"


def test_a_folder_that_is_no_git_checkout_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "source").mkdir()
    with pytest.raises(CodeRemoteError, match=r"is not a git checkout.*run the sandbox from a clone"):
        create_code_remote(tmp_path / "code", tmp_path / "code.git", source=tmp_path / "source")
    assert not (tmp_path / "code").exists() and not (tmp_path / "code.git").exists()
