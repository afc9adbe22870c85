"""The application layer is the only composition root, and the layers import downwards only.

Enforced over every Python file in the repository outside `tests/` (and every code cell of `notebooks/*.ipynb`),
by parsing it, so that a name in a string or a comment does not count:
- `DbtCloudClient(...)` is called in exactly one place, in `app/`.
- `Ledger(...)` and `ArtifactStore(...)` are each called in exactly one place, in `app/`, and nowhere else but
  their own modules (`migration/ledger.py`, `dbt2prefect/artifact_store.py`), which may build themselves.
- Prefect's `get_client(...)` is called in one place, the Prefect gateway (`dbt2prefect/prefect_gateway.py`):
  everything else talks to Prefect through `connect_prefect()`, which only the application layer and the few
  places that serve no tenant's workspace (`CONNECT_PREFECT`) call.
- The parity report root is built in the application layer: `tenant_report_root(...)` is called only there, and
  `ReportRoot(...)` only there and in its own module (`parity/store.py`).

Which package may import which is checked by `tests/quality/test_layers.py`.
"""

from __future__ import annotations

import ast
import json
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OWN_MODULES = {"Ledger": "migration/ledger.py", "ArtifactStore": "dbt2prefect/artifact_store.py"}
CONNECT_PREFECT = {
    "dbt2prefect/prefect_gateway.py": "the gateway itself (`gateway_or_connect`)",
    "dbt2prefect/prefect_context.py": "the client prefect-dbt's threads share inside a flow run",
    "flows/dbt_wg_flow.py": "a flow run tags itself, on the API the worker gave it",
    "sandbox/runs.py": "the sandbox starts and waits for runs of any deployment",
}
"""Where `connect_prefect()` may be called besides `app/`, and why no workspace serves it there."""


def _sources() -> Iterator[tuple[str, str]]:
    """(path relative to the repository, Python source) of every tracked file outside tests/."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py", "*.ipynb"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for relative in sorted(listed):
        if relative.startswith("tests/") or not (REPO / relative).is_file():
            continue
        text = (REPO / relative).read_text(encoding="utf-8")
        if relative.endswith(".ipynb"):
            cells = json.loads(text)["cells"]
            for index, cell in enumerate(cells):
                if cell["cell_type"] == "code":
                    yield f"{relative}#cell{index}", "".join(cell["source"])
        else:
            yield relative, text


@cache
def _all_calls() -> tuple[tuple[str, str], ...]:
    """(called name, `path:line`) of every call in the sources, parsed once for the module's tests."""
    sites = []
    for path, source in _sources():
        for node in ast.walk(ast.parse(source, path)):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if called is not None:
                sites.append((called, f"{path}:{node.lineno}"))
    return tuple(sites)


def _calls(name: str) -> list[str]:
    """Where `name(...)` is called, as `path:line`."""
    return [site for called, site in _all_calls() if called == name]


def test_the_dbt_cloud_client_is_built_in_one_place_in_the_application_layer() -> None:
    sites = _calls("DbtCloudClient")
    assert len(sites) == 1 and sites[0].startswith("app/"), (
        f"DbtCloudClient is built at {sites}; get the client from app.workspace.Workspace (`workspace.dbt_cloud`)"
    )


def test_the_ledger_and_the_artifact_store_are_built_in_one_place_in_the_application_layer() -> None:
    for name, own in OWN_MODULES.items():
        sites = [site for site in _calls(name) if not site.startswith(f"{own}:")]
        assert len(sites) == 1 and sites[0].startswith("app/"), (
            f"{name} is built at {sites}; get it from app.workspace.Workspace"
        )


def test_the_prefect_client_is_built_only_by_the_prefect_gateway() -> None:
    sites = _calls("get_client")
    assert sites and all(site.startswith("dbt2prefect/prefect_gateway.py:") for site in sites), (
        f"Prefect's get_client is called at {sites}; open a gateway with dbt2prefect.prefect_gateway.connect_prefect"
    )


def test_the_prefect_gateway_is_opened_by_the_application_layer() -> None:
    sites = [site for site in _calls("connect_prefect") if not site.startswith("app/")]
    outside = [site for site in sites if site.split(":")[0] not in CONNECT_PREFECT]
    assert not outside, (
        f"connect_prefect is called at {outside}; get the gateway from app.workspace.Workspace "
        "(`workspace.prefect_gateway`), or pass one in"
    )


def test_the_parity_report_root_is_built_in_the_application_layer() -> None:
    roots = [site for site in _calls("tenant_report_root") if not site.startswith("app/")]
    assert not roots, f"tenant_report_root is called at {roots}; use app.workspace.Workspace (`report_root`)"
    built = [site for site in _calls("ReportRoot") if not site.startswith(("app/", "parity/store.py:"))]
    assert not built, f"ReportRoot is built at {built}; use app.workspace.Workspace (`report_root`)"
