"""Loading dbt artifacts: typed, tolerant of extra fields, strict about schema versions and broken files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from parity import synthetic as syn
from parity.artifacts import RunArtifacts, load_catalog, load_manifest, load_run_results, parse_manifest
from parity.errors import ArtifactError


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_manifest_counts_enabled_and_disabled_nodes_and_sources(tmp_path: Path) -> None:
    source = {
        "unique_id": "source.p.raw.orders",
        "resource_type": "source",
        "name": "orders",
        "database": "raw",
        "schema": "shop",
        "identifier": "orders",
    }
    data = syn.manifest(
        [syn.node("model.p.a"), syn.node("seed.p.s", materialized="seed"), syn.node("test.p.t.1", materialized="test")],
        disabled=[syn.node("model.p.prod_only", enabled=False)],
        sources=[source],
    )
    data["nodes"]["model.p.a"]["some_future_field"] = {"anything": 1}
    manifest = load_manifest(_write(tmp_path / "manifest.json", data))
    assert manifest.counts() == {"model": 1, "seed": 1, "test": 1, "source": 1}
    assert manifest.disabled_counts() == {"model": 1}
    assert manifest.nodes["source.p.raw.orders"].relation_identifier == "orders"
    assert manifest.disabled_node("model.p.prod_only") is not None


def test_every_resource_type_dbt_1_11_writes_is_read_and_counted_as_dbt_counts(tmp_path: Path) -> None:
    # The shapes dbt 1.11 writes: a unit test's checksum is a plain string; groups have no depends_on and
    # null tags; semantic models null tags; a data test with enabled: false stays in `nodes`.
    disabled_test = syn.node("test.p.off.2", materialized="test")
    disabled_test["config"]["enabled"] = False
    data = syn.manifest([syn.node("model.p.orders"), syn.node("test.p.t.1", materialized="test"), disabled_test])
    data["unit_tests"] = {
        "unit_test.p.orders.ut": {
            "resource_type": "unit_test",
            "name": "ut",
            "model": "orders",
            "checksum": "9f2c0e",
            "schema": "main",
            "depends_on": {"macros": [], "nodes": ["model.p.orders"]},
            "config": {"tags": [], "meta": {}, "enabled": True},
        }
    }
    data["groups"] = {"group.p.sales": {"resource_type": "group", "name": "sales", "owner": {"name": "S"}}}
    data["semantic_models"] = {
        "semantic_model.p.orders": {
            "resource_type": "semantic_model",
            "name": "orders",
            "tags": None,
            "depends_on": {"nodes": ["model.p.orders"]},
            "config": {"enabled": True},
        }
    }
    data["metrics"] = {"metric.p.revenue": {"resource_type": "metric", "name": "revenue", "tags": []}}
    data["saved_queries"] = {"saved_query.p.by_day": {"resource_type": "saved_query", "name": "by_day"}}
    data["exposures"] = {"exposure.p.dash": {"resource_type": "exposure", "name": "dash", "config": None}}
    data["functions"] = {}
    manifest = load_manifest(_write(tmp_path / "manifest.json", data))
    assert manifest.counts() == {
        "model": 1,
        "test": 1,
        "unit_test": 1,
        "group": 1,
        "semantic_model": 1,
        "metric": 1,
        "saved_query": 1,
        "exposure": 1,
    }
    unit_test = manifest.nodes["unit_test.p.orders.ut"]
    assert unit_test.checksum.checksum == "9f2c0e"
    assert unit_test.depends_on.nodes == ["model.p.orders"]
    assert "test.p.off.2" in manifest.nodes and "test.p.off.2" not in manifest.counted()


def test_truncated_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "run_results.json"
    path.write_text(json.dumps(syn.run_results({"model.p.a": "success"}))[:40])
    with pytest.raises(ArtifactError, match=r"run_results\.json is not valid JSON"):
        load_run_results(path)


def test_unsupported_schema_version_is_refused_with_the_supported_range(tmp_path: Path) -> None:
    data = syn.manifest([syn.node("model.p.a")])
    data["metadata"]["dbt_schema_version"] = "https://schemas.getdbt.com/dbt/manifest/v99.json"
    with pytest.raises(
        ArtifactError, match=r"manifest.json: manifest schema v99 is not supported \(supported: v9..v12\)"
    ):
        load_manifest(_write(tmp_path / "manifest.json", data))


def test_wrong_artifact_kind_is_named(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="is not a dbt manifest artifact"):
        load_manifest(_write(tmp_path / "manifest.json", syn.run_results({"model.p.a": "success"})))


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"catalog.json does not exist"):
        load_catalog(tmp_path / "catalog.json")


def test_bad_field_type_names_the_location() -> None:
    data = syn.manifest([syn.node("model.p.a")])
    data["nodes"]["model.p.a"]["depends_on"] = {"nodes": 5}
    with pytest.raises(ArtifactError, match=r"origin.json: unexpected content at nodes.model.p.a.depends_on.nodes"):
        parse_manifest(data, "origin.json")


def test_run_results_command_and_catalog_columns(tmp_path: Path) -> None:
    _write(tmp_path / "manifest.json", syn.manifest([syn.node("model.p.a")]))
    _write(tmp_path / "run_results.json", syn.run_results({"model.p.a": "SUCCESS"}, which="build"))
    _write(tmp_path / "catalog.json", syn.catalog({"model.p.a": {"ID": "INTEGER", "Name": "VARCHAR"}}))
    artifacts = RunArtifacts.from_dir(tmp_path, "baseline")
    assert artifacts.run_results.command == "build"
    assert artifacts.run_results.results[0].status == "success"
    assert artifacts.catalog is not None
    assert artifacts.catalog.columns("model.p.a") == {"id": "INTEGER", "name": "VARCHAR"}
