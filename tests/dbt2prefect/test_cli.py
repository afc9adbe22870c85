"""What a new user of the `dbt2prefect` command expects: a version, choices in --help, one name per setting."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from cli.app import app
from cli.common import WORKFLOW_ORDER, ParityDir
from dbt2prefect import __version__

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"dbt2prefect {__version__}"


# Runs in a fresh interpreter: the test process has loaded Prefect and dbt long before.
_START_UP_PROBE = """
import sys
from cli.app import app
for args in (["--version"], ["--help"], ["plan", "--help"], ["cutover", "--help"], ["run", "--help"]):
    try:
        app(args, prog_name="dbt2prefect")
    except SystemExit as exc:
        assert exc.code == 0, (args, exc.code)
print(sorted({m.split(".")[0] for m in sys.modules} & {"prefect", "prefect_dbt", "dbt", "httpx", "fsspec"}))
"""


def test_version_and_help_load_neither_prefect_nor_dbt() -> None:
    # Commands import Prefect, dbt and the HTTP and storage clients when they run, so a start stays quick.
    proc = subprocess.run(
        [sys.executable, "-c", _START_UP_PROBE], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"dbt2prefect {__version__}"
    assert lines[-1] == "[]", f"imported at start: {lines[-1]}"


def test_options_with_fixed_choices_list_them_and_flags_have_no_metavar() -> None:
    run_help = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"}).stdout
    assert "--profiles-strategy <blocks|local>" in run_help
    assert "--command <build|run|test|seed|snapshot|deps|clean|source freshness|docs generate|compile|ls|retry>" in (
        run_help
    )
    assert "<bool>" not in run_help and "--full-refresh " in run_help
    assert "--adapter <snowflake|duckdb>" in runner.invoke(app, ["blocks", "register", "--help"]).stdout
    assert "--profiles-strategy <blocks|local>" in runner.invoke(app, ["parity", "--help"]).stdout


def _report_dir_app() -> typer.Typer:
    probe = typer.Typer()

    @probe.command()
    def show(report_dir: ParityDir = None) -> None:
        typer.echo(f"report dir: {report_dir}")

    return probe


def test_parity_report_dir_has_one_variable_and_the_old_one_still_works(tmp_path: Path) -> None:
    probe = _report_dir_app()
    new = runner.invoke(probe, [], env={"DBT2PREFECT_PARITY_DIR": str(tmp_path / "new")})
    assert new.stdout.strip() == f"report dir: {tmp_path / 'new'}" and "deprecated" not in new.stderr

    old = runner.invoke(probe, [], env={"DBT2PREFECT_PARITY_DIR": None, "DBT2PREFECT_PARITY_REPORT_DIR": str(tmp_path)})
    assert old.exit_code == 0 and old.stdout.strip() == f"report dir: {tmp_path}"
    assert "DBT2PREFECT_PARITY_REPORT_DIR is deprecated; set DBT2PREFECT_PARITY_DIR" in old.stderr

    both = runner.invoke(
        probe,
        ["--report-dir", "x"],
        env={"DBT2PREFECT_PARITY_REPORT_DIR": str(tmp_path), "DBT2PREFECT_PARITY_DIR": None},
    )
    assert both.stdout.strip() == "report dir: x", "the option wins over any variable"


def test_shell_completion_scripts_for_bash_and_zsh_complete_commands_and_choices() -> None:
    bash = runner.invoke(app, [], prog_name="dbt2prefect", env={"_DBT2PREFECT_COMPLETE": "source_bash"})
    assert bash.exit_code == 0 and "complete -o default -F _dbt2prefect_completion dbt2prefect" in bash.stdout
    zsh = runner.invoke(app, [], prog_name="dbt2prefect", env={"_DBT2PREFECT_COMPLETE": "source_zsh"})
    assert zsh.exit_code == 0 and "compdef _dbt2prefect_completion dbt2prefect" in zsh.stdout
    # What the bash script asks for at each Tab: command names, then an option's fixed choices.
    env = {"_DBT2PREFECT_COMPLETE": "complete_bash", "COMP_WORDS": "dbt2prefect do", "COMP_CWORD": "1"}
    assert runner.invoke(app, [], prog_name="dbt2prefect", env=env).stdout.split() == ["doctor"]
    env.update(COMP_WORDS="dbt2prefect parity --profiles-strategy ", COMP_CWORD="3")
    assert runner.invoke(app, [], prog_name="dbt2prefect", env=env).stdout.split() == ["blocks", "local"]


@pytest.mark.e2e  # starts Prefect's temporary server
def test_run_without_an_api_says_what_to_do_when_the_temporary_server_is_slow(tmp_path: Path) -> None:
    # No PREFECT_API_URL: Prefect's temporary server takes several seconds to start, longer than the 1 s allowed.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "home"), PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "cli", "run", "--select", "stg_orders"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "did not start within 1 s" in out and "dbt2prefect sandbox up" in out and "PREFECT_API_URL" in out
    assert "Traceback" not in out


def _all_commands() -> list[list[str]]:
    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="dbt2prefect")
    found: list[list[str]] = [[]]
    for name in root.list_commands(ctx):  # type: ignore[attr-defined]
        sub = root.get_command(ctx, name)  # type: ignore[attr-defined]
        found.append([name])
        if hasattr(sub, "list_commands"):
            sub_ctx = sub.context_class(sub, info_name=name, parent=ctx)
            found += [[name, child] for child in sub.list_commands(sub_ctx)]
    return found


def test_help_at_80_columns_shows_no_python_types_and_cuts_no_summary() -> None:
    for path in _all_commands():
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
        assert result.exit_code == 0, (path, result.output)
        text = result.stdout
        assert not re.search(r"<[a-z]+\[", text), (path, text)  # <list[int]> and the like
        cut = [line for line in text.splitlines() if line.endswith("...") and "COMMAND [ARGS]..." not in line]
        assert not cut, (path, cut)  # Click cuts a summary with "..." at the line's end
        if len(path) < 2 and path != ["run"]:  # run's --command lists a dozen choices on one line
            assert max(len(line) for line in text.splitlines()) <= 80, (path, text)


def test_commands_are_listed_in_workflow_order() -> None:
    text = runner.invoke(app, ["--help"], env={"COLUMNS": "80"}).stdout
    listed = re.findall(r"^  ([a-z][a-z-]*)  ", text.split("Commands:", 1)[1], flags=re.MULTILINE)
    assert listed == list(WORKFLOW_ORDER)
    assert listed.index("plan") < listed.index("apply") < listed.index("parity") < listed.index("cutover")


def test_blocks_secret_saves_the_value_from_the_environment_or_a_hidden_prompt(prefect_api: None) -> None:
    """The plan's env_var_secret step: the value never appears on the command line or in the output."""
    from prefect.blocks.system import Secret

    runner = CliRunner()
    value = "s3cr3t-from-env-value"
    saved = runner.invoke(
        app, ["blocks", "secret", "cli-test-secret", "--from-env", "DBT_ENV_SECRET_X"], env={"DBT_ENV_SECRET_X": value}
    )
    assert saved.exit_code == 0, saved.output
    assert Secret.load("cli-test-secret").get() == value and value not in saved.output

    prompted = runner.invoke(app, ["blocks", "secret", "cli-test-secret"], input="typed-value\n")
    assert prompted.exit_code == 0, prompted.output
    assert Secret.load("cli-test-secret").get() == "typed-value" and "typed-value" not in prompted.output

    unset = runner.invoke(app, ["blocks", "secret", "cli-test-secret", "--from-env", "DBT_ENV_SECRET_UNSET"])
    assert unset.exit_code == 2 and "read -rs DBT_ENV_SECRET_UNSET" in unset.output
    assert "Traceback" not in unset.output
    assert Secret.load("cli-test-secret").get() == "typed-value"  # nothing replaced by a refused call

    bad = runner.invoke(
        app, ["blocks", "secret", "Not A Name", "--from-env", "DBT_ENV_SECRET_X"], env={"DBT_ENV_SECRET_X": value}
    )
    assert bad.exit_code == 2 and "Not A Name" in bad.output
