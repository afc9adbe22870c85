"""Bad input, round 3: settings, work folders and output paths. Nothing deletes a user's files, nothing runs code
named by data, every tenant setting is checked once, at load.

Each CLI case asserts: the exit code (2: bad input), one clear line naming the input and the fix, no traceback, no
secret in the output, and that nothing changed (the files in the test's folder, byte for byte; the dbt Cloud jobs
and the ledger where the command reaches them).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from cli.app import app
from dbt2prefect.artifact_store import ArtifactStore, RunKey
from dbt2prefect.errors import ConfigError
from dbt2prefect.files import redact_url
from dbt2prefect.reasons import ReasonCode
from dbt2prefect.tenant import REPO_ROOT, load_tenant
from migration.dbt_cloud.auth import TokenAuth
from migration.dbt_cloud.client import DbtCloudClient
from migration.dbt_cloud.errors import DbtCloudConfigError
from sandbox.dbt_cloud import SandboxDbtCloud
from sandbox.errors import WorkdirError
from sandbox.stack import MARKER, StackPaths, load_raw_data, prepare_workdir

TENANT_TOML = REPO_ROOT / "tenants" / "dbt_williamgrant.toml"
PROJECT = REPO_ROOT / "tenants" / "dbt_williamgrant"
EDGE_JOBS = REPO_ROOT / "tests" / "migration" / "fixtures" / "jobs_edge_cases.json"
SEED_JOBS = REPO_ROOT / "sandbox" / "dbt_cloud" / "seed_jobs.json"
NIGHTLY = 70403103936332
SECRET = "hunter2-do-not-print"
runner = CliRunner()


# ------------------------------------------------------------------------------------------------ helpers


def _cli(args: list[str], env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, args, env=env)


def _snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every entry under `folder`: file bytes, link targets, folders; to prove that nothing changed."""
    found: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            found[key] = f"-> {os.readlink(path)}"
        elif path.is_dir():
            found[key] = "<dir>"
        else:
            found[key] = path.read_bytes()
    return found


def _assert_refused(result: Result, *names: str, code: int = 2) -> None:
    """The exit code, a handled exit, one `error:` line naming every name, no traceback, no secret."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert SECRET not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:") or line.startswith("Error")]
    assert errors, result.output
    for name in names:
        assert name in result.output, f"{name!r} not named in: {result.output}"


def _tenant_text(**replace: str) -> str:
    """The real tenant settings with an absolute project_dir and sandbox files, plus textual replacements."""
    text = (
        TENANT_TOML.read_text(encoding="utf-8")
        .replace('project_dir = "dbt_williamgrant"', f'project_dir = "{PROJECT}"')
        .replace('"../sandbox/', f'"{REPO_ROOT}/sandbox/')
    )
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------ tenant settings

REPOSITORY = 'repository = "https://github.com/OWNER/REPO.git"'
BRANCH = 'branch = "main"'
SANDBOX = "[tenant.sandbox]\n"
SETTING_CASES: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    # [tenant.code_storage]
    "repository as a git option": (
        {REPOSITORY: 'repository = "--upload-pack=touch /tmp/pwned"'},
        ("code_storage.repository", "option", "https://"),
    ),
    "repository through a remote helper": (
        {REPOSITORY: 'repository = "ext::sh -c touch% /tmp/pwned"'},
        ("code_storage.repository", "https://"),
    ),
    "repository over plain git": (
        {REPOSITORY: 'repository = "git://github.com/acme/dbt.git"'},
        ("code_storage.repository", "https://"),
    ),
    "repository with a token in it": (
        {REPOSITORY: f'repository = "https://x-access-token:{SECRET}@github.com/acme/dbt.git"'},
        ("code_storage.repository", "credentials", "credentials_block"),
    ),
    "repository in clear text": (
        {REPOSITORY: 'repository = "http://github.com/acme/dbt.git"'},
        ("code_storage.repository", "https://"),
    ),
    "empty branch": ({BRANCH: 'branch = ""'}, ("code_storage.branch", "git branch name", "'main'")),
    "multi-line branch": ({BRANCH: 'branch = """main\nrm -rf /"""'}, ("code_storage.branch", "one line")),
    "branch as an option": ({BRANCH: 'branch = "--orphan"'}, ("code_storage.branch", "'-'")),
    "branch with a range": ({BRANCH: 'branch = "main..dev"'}, ("code_storage.branch", "'..'")),
    "credentials block with a template": (
        {BRANCH: 'branch = "main"\ncredentials_block = "secret/x }} {{ $HOME"'},
        ("credentials_block", "'<block-type-slug>/<block-name>'", "github-credentials/wg-repo"),
    ),
    # [tenant.runtime]
    "image with shell metacharacters": (
        {'dependencies = "pip_packages"': 'dependencies = "image"\nimage = "python:3.12; rm -rf / #"'},
        ("runtime.image", "container image reference"),
    ),
    "requirements file outside the repository": (
        {'dependencies = "pip_packages"': 'dependencies = "requirements"\nrequirements_file = "../../etc/passwd"'},
        ("runtime.requirements_file", "inside it", "'..'"),
    ),
    "requirements file as an absolute path": (
        {'dependencies = "pip_packages"': 'dependencies = "requirements"\nrequirements_file = "/etc/passwd"'},
        ("runtime.requirements_file", "relative"),
    ),
    # [tenant.blocks]
    "profile prefix with a slash": (
        {'profile_prefix = "dbt-wg"': 'profile_prefix = "dbt/wg"'},
        ("blocks.profile_prefix", "Prefect block name", "lowercase"),
    ),
    "token block with spaces": (
        {'dbt_cloud_token_block = "dbt-wg-dbt-cloud-token"': 'dbt_cloud_token_block = "My Token"'},
        ("blocks.dbt_cloud_token_block", "Prefect block name"),
    ),
    # [tenant]
    "entrypoint outside the repository": (
        {'entrypoint = "flows/dbt_wg_flow.py:run_dbt_wg"': 'entrypoint = "../../elsewhere/flow.py:run"'},
        ("entrypoint", "inside it", "flows/dbt_wg_flow.py:run_dbt_wg"),
    ),
    "entrypoint as an absolute path": (
        {'entrypoint = "flows/dbt_wg_flow.py:run_dbt_wg"': 'entrypoint = "/tmp/flow.py:run"'},
        ("entrypoint", "relative"),
    ),
    "entrypoint without a function": (
        {'entrypoint = "flows/dbt_wg_flow.py:run_dbt_wg"': 'entrypoint = "flows/dbt_wg_flow.py"'},
        ("entrypoint", "'<file>.py:<flow function>'"),
    ),
    "acknowledged finding that is no finding": (
        {"acknowledged_findings = []": 'acknowledged_findings = ["whatever"]'},
        ("acknowledged_findings", "'whatever'", "reason code", "job_chaining"),
    ),
    "acknowledged finding of an unknown code": (
        {"acknowledged_findings = []": 'acknowledged_findings = ["job_chainin:70403103936332"]'},
        ("acknowledged_findings", "job_chainin", "did you mean 'job_chaining:70403103936332'?", "copy the key"),
    ),
    "acknowledged finding of a misspelt code": (
        {"acknowledged_findings = []": 'acknowledged_findings = ["Notifcation_Block:7"]'},
        ("acknowledged_findings", "did you mean 'notification_block:7'?"),
    ),
    "acknowledged finding without a job id": (
        {"acknowledged_findings = []": 'acknowledged_findings = ["job_chaining:all"]'},
        ("acknowledged_findings", "positive dbt Cloud job id"),
    ),
    "artifact store in memory": (
        {'artifact_store_url = "../.dbt2prefect/artifacts"': 'artifact_store_url = "memory://"'},
        ("artifact_store_url", "memory://", "outlive"),
    ),
    "artifact store with a password": (
        {'artifact_store_url = "../.dbt2prefect/artifacts"': f'artifact_store_url = "sftp://wg:{SECRET}@files/runs"'},
        ("artifact_store_url", "holds a password", "in the environment"),
    ),
    "ledger with a password in a chained URL": (
        {'ledger_url = "../.dbt2prefect/ledger"': f'ledger_url = "simplecache::sftp://wg:{SECRET}@files/ledger"'},
        ("ledger_url", "holds a password"),
    ),
    "work pool with a slash": (
        {'work_pool = "wg-managed"': 'work_pool = "wg/managed"'},
        ("work_pool", "work pool name"),
    ),
    "image python that is no version": (
        {'image_python = "3.12"': 'image_python = "3.12; ls"'},
        ("image_python", "'3.12'"),
    ),
    "flow name with a slash": (
        {'flow_name = "run_dbt_wg"': 'flow_name = "run/dbt"'},
        ("flow_name", "is not a name"),
    ),
    "profile name with a space": (
        {'profile_name = "dbt_williamgrant"': 'profile_name = "dbt williamgrant"'},
        ("profile_name", "letters, digits"),
    ),
    "a target twice": (
        {'targets = ["local", "dev", "prod", "parity"]': 'targets = ["local", "dev", "dev", "prod", "parity"]'},
        ("targets", "twice"),
    ),
    "environment key that is blank": (
        {'"70403103931990" = "dev"': '"70403103931990" = "dev"\n" " = "dev"'},
        ("dbt_cloud_environments", "environment id or name"),
    ),
    # [tenant.dbt_cloud]
    "empty token variable": (
        {'token_env = "DBT_CLOUD_API_TOKEN"': 'token_env = ""'},
        ("dbt_cloud.token_env", "environment variable name", "DBT_CLOUD_API_TOKEN"),
    ),
    "token variable with a space": (
        {'token_env = "DBT_CLOUD_API_TOKEN"': 'token_env = "DBT CLOUD"'},
        ("dbt_cloud.token_env", "environment variable name"),
    ),
    "negative project id": (
        {"project_id = 70403103926818": "project_id = -1"},
        ("dbt_cloud.project_id", "greater than 0"),
    ),
    "host with a password": (
        {'host = "https://emea.dbt.com"': f'host = "https://wg:{SECRET}@emea.dbt.com"'},
        ("dbt_cloud.host", "must not contain credentials", "token_env"),
    ),
    "plain-http host with a password": (
        {'host = "https://emea.dbt.com"': f'host = "http://wg:{SECRET}@emea.dbt.com"'},
        ("dbt_cloud.host", "credentials"),
    ),
    "host with a password and a path": (
        {'host = "https://emea.dbt.com"': f'host = "https://wg:{SECRET}@emea.dbt.com/api/v2"'},
        ("dbt_cloud.host", "credentials"),
    ),
    "host with a path": (
        {'host = "https://emea.dbt.com"': 'host = "https://emea.dbt.com/api/v2"'},
        ("dbt_cloud.host", "only scheme and host"),
    ),
    # [tenant.notifications]
    "notification block with a template": (
        {'"slack-webhook/wg-data-alerts"': '"slack-webhook/x }} {{ flow_run.parameters"'},
        ("notifications", "lowercase letters", "slack-webhook/data-alerts"),
    ),
    "notification destination on two lines": (
        {'"slack:#data-alerts"': '"slack:#data-alerts\\nmore"'},
        ("notifications", "slack:#data-alerts"),
    ),
    # [tenant.sandbox]
    "raw loader naming os.system": (
        {'raw_loader = "sandbox.datagen:generate"': 'raw_loader = "os:system"'},
        ("raw_loader", "'os:system'", "'<file>.py:<function>'", "does not name importable modules"),
    ),
    "raw loader naming subprocess": (
        {'raw_loader = "sandbox.datagen:generate"': 'raw_loader = "subprocess:getoutput"'},
        ("raw_loader", "'<file>.py:<function>'"),
    ),
    "raw loader file outside the project": (
        {'raw_loader = "sandbox.datagen:generate"': f'raw_loader = "{REPO_ROOT / "sandbox" / "datagen.py"}:generate"'},
        ("raw_loader", "inside the tenant's dbt project folder"),
    ),
    "raw catalog that is no identifier": (
        {'raw_catalog = "raw"': 'raw_catalog = "raw; drop schema x"'},
        ("raw_catalog", "SQL identifier"),
    ),
    "demo job zero": (
        {"demo_jobs = [70403103936332, 70403103936340]": "demo_jobs = [0]"},
        ("demo_jobs", "positive"),
    ),
    "demo job twice": (
        {"demo_jobs = [70403103936332, 70403103936340]": "demo_jobs = [70403103936332, 70403103936332]"},
        ("demo_jobs", "twice"),
    ),
    "fired job not among the demo jobs": (
        {"demo_fired_job = 70403103936340": "demo_fired_job = 70403103936336"},
        ("demo_fired_job", "not one of demo_jobs", "add it to demo_jobs"),
    ),
    "code directory that is a file": (
        {REPOSITORY: f'directory = "{TENANT_TOML}"'},
        ("code_storage.directory", "is a file"),
    ),
    "negative fired job": (
        {"demo_fired_job = 70403103936340": "demo_fired_job = -5"},
        ("demo_fired_job", "positive"),
    ),
    "demo acknowledgement that is no finding": (
        {"demo_acknowledged = []": 'demo_acknowledged = ["anything"]'},
        ("demo_acknowledged", "reason code"),
    ),
}


@pytest.mark.parametrize("case", list(SETTING_CASES))
def test_each_tenant_setting_is_checked_at_load(case: str, tmp_path: Path) -> None:
    replace, names = SETTING_CASES[case]
    tenant = _write(tmp_path / "tenant.toml", _tenant_text(**replace))
    before = _snapshot(tmp_path)
    result = _cli(["plan", "--from-file", str(EDGE_JOBS), "--tenant-file", str(tenant)])
    _assert_refused(result, "tenant.toml", *names)
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1, result.output
    assert _snapshot(tmp_path) == before


def test_local_profiles_dir_that_is_a_file(tmp_path: Path) -> None:
    profiles = _write(tmp_path / "profiles.yml", "x: 1\n")
    text = _tenant_text(**{'local_profiles_dir = "dbt_williamgrant/profiles"': f'local_profiles_dir = "{profiles}"'})
    with pytest.raises(ConfigError, match=r"local_profiles_dir.*is a file; point it at the folder"):
        load_tenant(_write(tmp_path / "tenant.toml", text))


def test_every_shipped_tenant_still_loads() -> None:
    for path in (TENANT_TOML, REPO_ROOT / "tests" / "tenants" / "shop.toml"):
        load_tenant(path)


def test_valid_spellings_of_the_checked_settings_load(tmp_path: Path) -> None:
    text = _tenant_text(
        **{
            REPOSITORY: 'repository = "git@github.com:acme/dbt.git"',
            BRANCH: 'branch = "release/2026-12"\ncredentials_block = "github-credentials/wg-repo"',
            'dependencies = "pip_packages"': 'dependencies = "image"\nimage = "ghcr.io/acme/dbt-runner:1.4"',
            "acknowledged_findings = []": 'acknowledged_findings = ["job_chaining:70403103936332"]',
        }
    )
    tenant = load_tenant(_write(tmp_path / "tenant.toml", text))
    assert tenant.code_storage is not None and tenant.code_storage.branch == "release/2026-12"
    assert tenant.acknowledged_findings == ("job_chaining:70403103936332",)
    assert {"job_chaining", "steps_empty", "notification_block"} <= {c.value for c in ReasonCode}


# ------------------------------------------------------------------------------------------------ raw loaders


@pytest.mark.parametrize("callable_", ["os:system", "os:mkdir", "shutil:rmtree"])
def test_a_tenant_cannot_run_code_during_sandbox_up(callable_: str, tmp_path: Path, taken_port: int) -> None:
    # Before, the loader ran on the warehouse folder before the taken port stopped the start: `os:mkdir` made it.
    text = _tenant_text(**{'raw_loader = "sandbox.datagen:generate"': f'raw_loader = "{callable_}"'})
    tenant = _write(tmp_path / "tenant.toml", text)
    before = _snapshot(tmp_path)
    work = tmp_path / "work"
    result = _cli(
        ["sandbox", "up", "--workdir", str(work), "--tenant-file", str(tenant), "--dbt-cloud-port", str(taken_port)]
    )
    _assert_refused(result, "raw_loader", repr(callable_), "'<file>.py:<function>'")
    assert not (work / "warehouse").exists() and not work.exists()
    assert _snapshot(tmp_path) == before


def test_a_loader_file_in_the_tenants_project_is_called(tmp_path: Path) -> None:
    project = tmp_path / "shop"
    _write(
        project / "loaders" / "raw.py",
        "from pathlib import Path\n\ndef load(folder):\n    Path(folder, 'raw.txt').write_text('loaded')\n    return 7\n",
    )
    text = _tenant_text(
        **{
            f'project_dir = "{PROJECT}"': 'project_dir = "shop"',
            'raw_loader = "sandbox.datagen:generate"': 'raw_loader = "shop/loaders/raw.py:load"',
        }
    )
    tenant = load_tenant(_write(tmp_path / "tenant.toml", text))
    warehouse = tmp_path / "warehouse"
    warehouse.mkdir()
    assert load_raw_data(tenant, warehouse) == 7
    assert (warehouse / "raw.txt").read_text() == "loaded"
    assert "os" not in (tenant.sandbox.raw_loader or "").split(":")[0].split("/")


def test_a_loader_file_that_escapes_the_project_through_dots_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "shop"
    project.mkdir()
    _write(tmp_path / "evil.py", "def load(folder):\n    raise SystemExit('ran')\n")
    text = _tenant_text(
        **{
            f'project_dir = "{PROJECT}"': 'project_dir = "shop"',
            'raw_loader = "sandbox.datagen:generate"': 'raw_loader = "shop/../evil.py:load"',
        }
    )
    with pytest.raises(ConfigError, match="inside the tenant's dbt project folder"):
        load_tenant(_write(tmp_path / "tenant.toml", text))


# ------------------------------------------------------------------------------------------------ work folders


@pytest.fixture
def user_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "mine"
    _write(folder / "notes.txt", "a user's notes")
    _write(folder / "project" / "dbt_project.yml", "name: mine\n")
    return folder


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_sandbox_up_never_claims_a_users_folder(user_folder: Path, taken_port: int) -> None:
    before = _snapshot(user_folder)
    for extra in ([], ["--fresh"]):
        result = _cli(["sandbox", "up", "--workdir", str(user_folder), "--prefect-port", str(taken_port), *extra])
        _assert_refused(result, str(user_folder), "not empty", "empty or new folder", "--workdir")
        assert _snapshot(user_folder) == before
    assert not (user_folder / MARKER).exists()


def test_demo_never_empties_a_users_folder(user_folder: Path) -> None:
    before = _snapshot(user_folder)
    result = _cli(["demo", "--workdir", str(user_folder)])
    _assert_refused(result, str(user_folder), "not empty", "--workdir")
    assert _snapshot(user_folder) == before


@pytest.mark.parametrize("option", ["--prefect-port", "--dbt-cloud-port"])
def test_a_failed_start_leaves_a_new_folder_unmade(option: str, tmp_path: Path, taken_port: int) -> None:
    work = tmp_path / "new" / "work"
    result = _cli(["sandbox", "up", "--workdir", str(work), option, str(taken_port)])
    _assert_refused(result, option, "in use")
    assert not (tmp_path / "new").exists()


def test_a_failed_start_leaves_an_empty_folder_empty_and_unmarked(tmp_path: Path, taken_port: int) -> None:
    work = tmp_path / "empty"
    work.mkdir()
    result = _cli(["sandbox", "up", "--workdir", str(work), "--dbt-cloud-port", str(taken_port)])
    _assert_refused(result, "--dbt-cloud-port")
    assert list(work.iterdir()) == []
    # Not claimed, so a later --fresh of the folder after the user filled it is refused, as for any folder of theirs.
    _write(work / "notes.txt", "mine now")
    with pytest.raises(WorkdirError, match="not empty and was not made by dbt2prefect"):
        prepare_workdir(work, fresh=True)
    assert (work / "notes.txt").read_text() == "mine now"


def test_a_marker_that_is_a_link_does_not_make_a_folder_ours(user_folder: Path, tmp_path: Path) -> None:
    real = _write(tmp_path / "elsewhere" / MARKER, "made by dbt2prefect sandbox\n")
    (user_folder / MARKER).symlink_to(real)
    before = _snapshot(user_folder)
    with pytest.raises(WorkdirError, match="not empty"):
        prepare_workdir(user_folder, fresh=True)
    assert _snapshot(user_folder) == before


def test_the_sandboxs_own_folder_is_still_reused_and_emptied(tmp_path: Path) -> None:
    paths = prepare_workdir(tmp_path / "work", fresh=False)
    _write(paths.warehouse / "raw.duckdb", "data")
    assert prepare_workdir(paths.root, fresh=False) == StackPaths(paths.root)
    assert (paths.warehouse / "raw.duckdb").exists()
    prepare_workdir(paths.root, fresh=True)
    assert [p.name for p in paths.root.iterdir()] == [MARKER]


# ------------------------------------------------------------------------------------------------ emit outputs


@pytest.fixture
def local_tenant(tmp_path: Path) -> Path:
    """A tenant whose code storage is this checkout, on a process pool (emit writes a complete file for it: its
    local stores are where its runs are)."""
    text = _tenant_text(
        **{
            REPOSITORY: f'directory = "{REPO_ROOT}"',
            BRANCH: "",
            'pool_type = "prefect:managed"': 'pool_type = "process"',
            'dependencies = "pip_packages"': 'dependencies = "preinstalled"',
        }
    )
    return _write(tmp_path / "tenant.toml", text)


def _emit(tenant: Path, *args: str) -> Result:
    return _cli(["emit", "--from-file", str(SEED_JOBS), "--allow-blockers", "--tenant-file", str(tenant), *args])


def test_emit_over_the_tenant_settings_file_is_refused(local_tenant: Path, tmp_path: Path) -> None:
    before = _snapshot(tmp_path)
    for args in (
        ["-o", str(local_tenant)],
        ["-o", str(tmp_path / "p.yaml"), "--ci-workflow", str(local_tenant)],
    ):
        result = _emit(local_tenant, *args)
        _assert_refused(result, str(local_tenant), "the tenant settings file", "pass another")
        assert _snapshot(tmp_path) == before


def test_emit_over_the_inventory_is_refused(local_tenant: Path, tmp_path: Path) -> None:
    inventory = tmp_path / "jobs.json"
    inventory.write_bytes(SEED_JOBS.read_bytes())
    before = _snapshot(tmp_path)
    result = _cli(
        [
            "emit",
            "--from-file",
            str(inventory),
            "--allow-blockers",
            "--tenant-file",
            str(local_tenant),
            "-o",
            str(inventory),
        ]
    )
    _assert_refused(result, "--output", "the inventory (--from-file)", "pass another --output")
    assert _snapshot(tmp_path) == before


def test_emit_to_one_path_for_both_files_is_refused(local_tenant: Path, tmp_path: Path) -> None:
    before = _snapshot(tmp_path)
    out = str(tmp_path / "both.yaml")
    result = _emit(local_tenant, "-o", out, "--ci-workflow", out)
    _assert_refused(result, "--output and --ci-workflow are the same file", "two different paths")
    assert _snapshot(tmp_path) == before


def test_emit_over_a_file_it_did_not_write_is_refused(local_tenant: Path, tmp_path: Path) -> None:
    notes = _write(tmp_path / "deploy" / "prefect.yaml", "# my own prefect.yaml\nname: mine\n")
    victim = _write(tmp_path / "victim.yml", "name: keep me\n")
    link = tmp_path / "deploy" / "ci.yml"
    link.symlink_to(victim)
    before = _snapshot(tmp_path)
    result = _emit(local_tenant, "-o", str(notes))
    _assert_refused(result, "--output", str(notes), "overwrites only files it wrote", "move that file away")
    result = _emit(local_tenant, "-o", str(tmp_path / "deploy" / "new.yaml"), "--ci-workflow", str(link))
    _assert_refused(result, "--ci-workflow", "symbolic link")
    assert _snapshot(tmp_path) == before


def test_emit_rewrites_its_own_files(local_tenant: Path, tmp_path: Path) -> None:
    out, workflow = tmp_path / "out" / "prefect.yaml", tmp_path / "out" / "ci.yml"
    for _ in range(2):
        result = _emit(local_tenant, "-o", str(out), "--ci-workflow", str(workflow))
        assert result.exit_code == 0, result.output
    assert out.read_text().startswith("# Generated by `dbt2prefect")
    assert workflow.read_text().startswith("# Generated by `dbt2prefect")


# ------------------------------------------------------------------------------------------------ dbt Cloud


@pytest.fixture
def cloud() -> Iterator[SandboxDbtCloud]:
    with SandboxDbtCloud.start() as server:
        yield server


def _cloud_tenant(tmp_path: Path, cloud: SandboxDbtCloud, **replace: str) -> Path:
    text = _tenant_text(
        **{
            'host = "https://emea.dbt.com"': f'host = "{cloud.url}"',
            "account_id = 70403103922125": f"account_id = {cloud.account_id}",
            'ledger_url = "../.dbt2prefect/ledger"': f'ledger_url = "{tmp_path / "ledger"}"',
            **replace,
        }
    )
    return _write(tmp_path / "tenant.toml", text)


@pytest.mark.parametrize("token", ["abc\r\ndef", "abc\ndef", "ab c", "abc\tdef"])
def test_a_token_with_a_line_break_is_bad_input_at_once(token: str, cloud: SandboxDbtCloud, tmp_path: Path) -> None:
    tenant = _cloud_tenant(tmp_path, cloud)
    before = _snapshot(tmp_path)
    result = _cli(
        ["export", "--tenant-file", str(tenant), "-o", str(tmp_path / "inventory.json")],
        env={"DBT_CLOUD_API_TOKEN": token},
    )
    _assert_refused(result, "environment variable DBT_CLOUD_API_TOKEN", "line break", "set it again")
    assert "retry" not in result.output.lower()
    assert _snapshot(tmp_path) == before


def test_a_token_keeps_its_surrounding_newline_tolerance() -> None:
    assert "**********" in repr(TokenAuth("abc123\n", source="x"))
    with pytest.raises(DbtCloudConfigError, match="from x contains a line break"):
        TokenAuth("abc\r\n123", source="x")


@pytest.mark.parametrize(
    "host",
    [
        f"https://wg:{SECRET}@emea.dbt.com",
        f"http://wg:{SECRET}@emea.dbt.com",
        f"https://wg:{SECRET}@emea.dbt.com/api/v2/",
        f"https://{SECRET}@emea.dbt.com",
        f"ftp://wg:{SECRET}@emea.dbt.com",
    ],
)
def test_credentials_in_the_host_are_refused_and_never_printed(host: str) -> None:
    with pytest.raises(DbtCloudConfigError) as caught:
        DbtCloudClient(host, 1, "token")
    assert SECRET not in str(caught.value)
    result = _cli(["export", "--host", host, "-o", "/nonexistent/inventory.json"], env={"DBT_CLOUD_API_TOKEN": "t"})
    _assert_refused(result, "host")


def test_urls_are_redacted() -> None:
    assert redact_url(f"https://wg:{SECRET}@h/x") == "https://wg:***@h/x"
    assert redact_url(f"s3://{SECRET}@bucket/runs") == "s3://***@bucket/runs"
    assert redact_url("https://emea.dbt.com") == "https://emea.dbt.com"
    assert redact_url(f"simplecache::sftp://u:{SECRET}@h/x") == "simplecache::sftp://u:***@h/x"


def test_an_unknown_demo_job_names_the_setting(tmp_path: Path) -> None:
    from sandbox.demo import run_demo

    text = _tenant_text(
        **{
            "demo_jobs = [70403103936332, 70403103936340]": "demo_jobs = [12345]",
            "demo_fired_job = 70403103936340": "demo_fired_job = 12345",
            'raw_loader = "sandbox.datagen:generate"\nraw_catalog = "raw"': "",
        }
    )
    tenant = _write(tmp_path / "tenant.toml", text)
    with pytest.raises(ConfigError, match=r"\[tenant.sandbox\] demo_jobs names job 12345, which is not in"):
        run_demo(tmp_path / "work", tenant_file=tenant, ready_timeout=5)


# ------------------------------------------------------------------------------------------------ cutover / rollback


@pytest.mark.parametrize(
    "args,names",
    [
        (["cutover", "--job", "0"], ("--job", "greater than or equal to 1")),
        (["cutover", "--job", "-5"], ("--job", "greater than or equal to 1")),
        (["rollback", "--job", "0"], ("--job", "greater than or equal to 1")),
        (["rollback", "--job", "-1"], ("--job", "greater than or equal to 1")),
        (["cutover", "--job", str(NIGHTLY), "--force"], ("--force needs --reason",)),
        (["cutover", "--job", str(NIGHTLY), "--force", "--reason", "  "], ("--force needs --reason",)),
    ],
)
def test_cutover_arguments_are_bad_input_before_any_call(
    args: list[str], names: tuple[str, ...], tmp_path: Path
) -> None:
    # The dbt Cloud host of this tenant answers nothing: a refusal that reached it would be exit 3, not 2.
    tenant = _write(
        tmp_path / "tenant.toml",
        _tenant_text(**{'host = "https://emea.dbt.com"': 'host = "http://127.0.0.1:9"'}),
    )
    result = _cli(
        [*args, "--tenant-file", str(tenant), "--ledger-url", str(tmp_path / "ledger")],
        env={"DBT_CLOUD_API_TOKEN": "t"},
    )
    _assert_refused(result, *names)
    assert not (tmp_path / "ledger").exists()


def test_unknown_job_ids_are_bad_input(cloud: SandboxDbtCloud, tmp_path: Path) -> None:
    tenant = _cloud_tenant(tmp_path, cloud)
    jobs = json.dumps(cloud.app.state.jobs, sort_keys=True, default=str)
    env = {"DBT_CLOUD_API_TOKEN": cloud.token}
    result = _cli(["cutover", "--job", "12345", "--tenant-file", str(tenant)], env=env)
    _assert_refused(result, "--job 12345", "not a job of the dbt Cloud", "check the job id")
    result = _cli(["rollback", "--job", "12345", "--tenant-file", str(tenant)], env=env)
    _assert_refused(result, "no cutover in the ledger", "12345", "check the job ids")
    assert json.dumps(cloud.app.state.jobs, sort_keys=True, default=str) == jobs
    assert not (tmp_path / "ledger").exists() or not any((tmp_path / "ledger").rglob("*.json"))


# ------------------------------------------------------------------------------------------------ artifacts fetch


def _store_tenant(tmp_path: Path) -> tuple[Path, ArtifactStore]:
    store = tmp_path / "store"
    text = _tenant_text(**{'artifact_store_url = "../.dbt2prefect/artifacts"': f'artifact_store_url = "{store}"'})
    return _write(tmp_path / "tenant.toml", text), ArtifactStore(str(store))


def _stored_run(store: ArtifactStore, tmp_path: Path, run_id: str, *names: str) -> RunKey:
    key = RunKey("dbt_williamgrant", "dbt_wg", "prod", run_id)
    target = tmp_path / f"target-{run_id}"
    for name in names:
        _write(target / name, json.dumps({"metadata": {"run": run_id}}))
    store.save_run(key, target, {"status": "ok"}, files=names)
    store.mark_latest(key)
    return key


def test_fetch_without_a_manifest_fetches_nothing(tmp_path: Path) -> None:
    tenant, store = _store_tenant(tmp_path)
    _stored_run(store, tmp_path, "run-1", "run_results.json")
    before = _snapshot(tmp_path)
    result = _cli(
        ["artifacts", "fetch", "--target", "prod", "--to", str(tmp_path / "state"), "--tenant-file", str(tenant)]
    )
    _assert_refused(result, "run-1", "has no manifest.json", "nothing was fetched")
    assert _snapshot(tmp_path) == before


def test_fetch_of_a_pointer_to_a_run_not_stored(tmp_path: Path) -> None:
    tenant, store = _store_tenant(tmp_path)
    _stored_run(store, tmp_path, "run-1", "manifest.json")
    pointer = tmp_path / "store" / "dbt_williamgrant" / "dbt_wg" / "prod" / "latest.json"
    pointer.write_text(json.dumps({"flow_run_id": "run-gone"}))
    before = _snapshot(tmp_path)
    result = _cli(
        ["artifacts", "fetch", "--target", "prod", "--to", str(tmp_path / "state"), "--tenant-file", str(tenant)]
    )
    _assert_refused(result, "run-gone", "is not stored", "nothing was fetched")
    assert _snapshot(tmp_path) == before


def test_fetch_never_writes_through_a_link(tmp_path: Path) -> None:
    tenant, store = _store_tenant(tmp_path)
    _stored_run(store, tmp_path, "run-2", "manifest.json")
    victim = _write(tmp_path / "victim.json", "do not overwrite")
    state = tmp_path / "state"
    state.mkdir()
    (state / "manifest.json").symlink_to(victim)
    result = _cli(["artifacts", "fetch", "--target", "prod", "--to", str(state), "--tenant-file", str(tenant)])
    assert result.exit_code == 0, result.output
    assert victim.read_text() == "do not overwrite"
    assert not (state / "manifest.json").is_symlink()
    assert json.loads((state / "manifest.json").read_text())["metadata"]["run"] == "run-2"


# ------------------------------------------------------------------------------------------------ export output


def test_export_over_a_file_it_did_not_write_is_refused_before_any_call(tmp_path: Path) -> None:
    # The host answers nothing: a refusal that reached dbt Cloud would be exit 3 after retries, not 2.
    tenant = _write(
        tmp_path / "tenant.toml", _tenant_text(**{'host = "https://emea.dbt.com"': 'host = "http://127.0.0.1:9"'})
    )
    notes = _write(tmp_path / "notes.json", '{"mine": true}\n')
    before = _snapshot(tmp_path)
    for target in (tenant, notes):
        result = _cli(["export", "--tenant-file", str(tenant), "-o", str(target)], env={"DBT_CLOUD_API_TOKEN": "t"})
        _assert_refused(result, "--output", str(target), "overwrites only files it wrote")
    assert _snapshot(tmp_path) == before


def test_export_rewrites_its_own_inventory(cloud: SandboxDbtCloud, tmp_path: Path) -> None:
    tenant = _cloud_tenant(tmp_path, cloud)
    out = tmp_path / "inventory.json"
    for _ in range(2):
        result = _cli(
            ["export", "--tenant-file", str(tenant), "-o", str(out)], env={"DBT_CLOUD_API_TOKEN": cloud.token}
        )
        assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["format"] == "dbt2prefect-inventory"
