"""The scale benchmark's project generator writes a project dbt parses, with the tenant's shapes."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from bench.generate_project import generate


@pytest.mark.e2e  # a real dbt parse
def test_a_generated_project_of_20_models_parses(tmp_path: Path) -> None:
    from dbt.cli.main import dbtRunner

    project = tmp_path / "project"
    counts = generate(project, 20, tmp_path / "warehouse")
    args = ["parse", "--project-dir", str(project), "--profiles-dir", str(project / "profiles"), "--target", "local"]
    result = dbtRunner().invoke([*args, "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path)])
    assert result.success, result.exception
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text())
    kinds = Counter(node["resource_type"] for node in manifest["nodes"].values())
    assert kinds == {"model": 20, "test": counts["tests"], "seed": counts["seeds"], "snapshot": 2}
    models = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    layers = Counter(n["fqn"][1] for n in models)
    assert layers == {"staging": 8, "intermediate": 6, "marts": 6}
    assert [n["name"] for n in models if n["config"]["materialized"] == "incremental"] == ["fct_incremental_events"]
    assert {"finance", "weekly", "daily"} <= {tag for n in models for tag in n["tags"]}
    assert set(manifest["selectors"]) == {"nightly", "finance", "weekly_marts"}
