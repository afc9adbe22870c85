"""Typed, tolerant views of the dbt artifacts parity needs: manifest, run_results, catalog.

Only the fields parity reads are modelled; everything else is ignored, so newer minor additions do not
break loading. The schema version in `metadata.dbt_schema_version` is checked against the range this
module understands, and a truncated or non-JSON file raises an error that names the file.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from parity.errors import ArtifactError

# Schema versions this module reads (dbt 1.5 .. 1.11 write manifest v9..v12, run_results v4..v6, catalog v1).
SUPPORTED_VERSIONS: dict[str, range] = {
    "manifest": range(9, 13),
    "run-results": range(4, 7),
    "catalog": range(1, 2),
    "sources": range(3, 4),
}
_VERSION_RE = re.compile(r"/dbt/(?P<kind>[a-z-]+)/v(?P<version>\d+)\.json$")

# Resource types that `dbt build`/`run`/... execute and that have a relation in the warehouse.
RELATION_TYPES = frozenset({"model", "seed", "snapshot"})


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class ArtifactMetadata(_Lenient):
    dbt_schema_version: str = ""
    dbt_version: str | None = None
    generated_at: str | None = None
    invocation_id: str | None = None
    project_name: str | None = None
    adapter_type: str | None = None


class NodeConfig(_Lenient):
    enabled: bool = True
    materialized: str | None = None
    tags: list[str] = Field(default_factory=list)

    @field_validator("tags", mode="before")
    @classmethod
    def _tags_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [value]
        return [] if value is None else value


class Checksum(_Lenient):
    """A node's file checksum; a unit test's (dbt >= 1.8) is a bare string, kept as `checksum`."""

    name: str = ""
    checksum: str = ""


class DependsOn(_Lenient):
    nodes: list[str] = Field(default_factory=list)


class TestMetadata(_Lenient):
    """A generic test's name (`unique`, `not_null`, ...) and arguments."""

    name: str = ""
    arguments: dict[str, Any] = Field(default_factory=dict, alias="kwargs")


class ManifestNode(_Lenient):
    """A node, source, exposure, ... of the manifest (the fields parity uses)."""

    unique_id: str
    resource_type: str
    name: str = ""
    package_name: str = ""
    database: str | None = None
    schema_: str | None = Field(default=None, alias="schema")
    alias: str | None = None
    identifier: str | None = None
    relation_name: str | None = None
    original_file_path: str = ""
    raw_code: str = ""
    compiled_code: str | None = None
    tags: list[str] = Field(default_factory=list)
    config: NodeConfig = NodeConfig()
    checksum: Checksum = Checksum()
    depends_on: DependsOn = DependsOn()
    test_metadata: TestMetadata | None = None
    column_name: str | None = None
    attached_node: str | None = None

    @field_validator("checksum", mode="before")
    @classmethod
    def _checksum(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"name": "sha256", "checksum": value}
        return {} if value is None else value

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> Any:
        return NodeConfig._tags_list(value)

    @field_validator("config", "depends_on", mode="before")
    @classmethod
    def _empty_section(cls, value: Any) -> Any:
        # Groups have no depends_on; some resource types write null where others write {}.
        return {} if value is None else value

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    @property
    def materialized(self) -> str | None:
        return self.config.materialized

    @property
    def relation_identifier(self) -> str:
        """The object name in the warehouse: alias for nodes, identifier for sources."""
        return self.identifier or self.alias or self.name

    @property
    def all_tags(self) -> frozenset[str]:
        return frozenset(self.tags) | frozenset(self.config.tags)

    @property
    def has_relation(self) -> bool:
        """True when the node builds an object in the warehouse that can be counted."""
        return self.resource_type in RELATION_TYPES and self.materialized not in ("ephemeral",)


# Every section of resources dbt 1.11 writes (macros and docs blocks are not resources of the graph).
GRAPH_SECTIONS = (
    "nodes",
    "sources",
    "exposures",
    "metrics",
    "groups",
    "semantic_models",
    "saved_queries",
    "unit_tests",
    "functions",
)


class Manifest(_Lenient):
    """manifest.json: enabled nodes by unique_id, disabled nodes by unique_id."""

    metadata: ArtifactMetadata = ArtifactMetadata()
    nodes: dict[str, ManifestNode] = Field(default_factory=dict)
    disabled: dict[str, list[ManifestNode]] = Field(default_factory=dict)

    @field_validator("disabled", mode="before")
    @classmethod
    def _disabled_none(cls, value: Any) -> Any:
        return {} if value is None else value

    def get(self, unique_id: str) -> ManifestNode | None:
        return self.nodes.get(unique_id)

    def disabled_node(self, unique_id: str) -> ManifestNode | None:
        versions = self.disabled.get(unique_id)
        return versions[0] if versions else None

    def unique_columns(self, unique_id: str) -> list[str]:
        """Columns of a node with a generic `unique` test, those also tested `not_null` first (lower case)."""
        tested: dict[str, set[str]] = {}
        for node in self.nodes.values():
            if node.resource_type != "test" or node.test_metadata is None or node.attached_node != unique_id:
                continue
            column = node.column_name or node.test_metadata.arguments.get("column_name")
            if column and node.test_metadata.name in ("unique", "not_null"):
                tested.setdefault(str(column).lower(), set()).add(node.test_metadata.name)
        unique = [column for column, tests in tested.items() if "unique" in tests]
        return sorted(unique, key=lambda column: ("not_null" not in tested[column], column))

    def counted(self) -> dict[str, ManifestNode]:
        """The resources dbt counts in its `Found ...` line (the counts dbt Cloud shows), by unique_id.

        Every resource of the manifest's sections except a data test with `enabled: false`, which stays in
        `nodes`. Macros, which dbt counts too, are left out: they come with dbt itself and its adapters, so two
        dbt versions would differ without any difference in the project.
        """
        return {uid: node for uid, node in self.nodes.items() if node.enabled or node.resource_type != "test"}

    def counts(self) -> Counter[str]:
        """Counted resources per type (see `counted`)."""
        return Counter(node.resource_type for node in self.counted().values())

    def disabled_counts(self) -> Counter[str]:
        """Disabled nodes per resource type."""
        return Counter(versions[0].resource_type for versions in self.disabled.values() if versions)


class Timing(_Lenient):
    name: str
    started_at: str | None = None
    completed_at: str | None = None


class NodeResult(_Lenient):
    unique_id: str
    status: str
    execution_time: float = 0.0
    message: str | None = None
    failures: int | None = None
    timing: list[Timing] = Field(default_factory=list)

    @field_validator("status", mode="before")
    @classmethod
    def _status_text(cls, value: Any) -> Any:
        return str(value).lower() if value is not None else "unknown"


class RunResults(_Lenient):
    """run_results.json of one dbt invocation: only the nodes that command executed."""

    metadata: ArtifactMetadata = ArtifactMetadata()
    results: list[NodeResult] = Field(default_factory=list)
    elapsed_time: float = 0.0
    args: dict[str, Any] = Field(default_factory=dict)

    @property
    def command(self) -> str | None:
        """The dbt command that wrote the file (`args.which`: build, run, test, docs generate is 'generate')."""
        which = self.args.get("which")
        return str(which) if which else None

    def by_id(self) -> dict[str, NodeResult]:
        return {result.unique_id: result for result in self.results}


class CatalogColumn(_Lenient):
    name: str
    type: str = ""
    index: int = 0


class CatalogTable(_Lenient):
    unique_id: str | None = None
    columns: dict[str, CatalogColumn] = Field(default_factory=dict)


class Catalog(_Lenient):
    """catalog.json (docs generate): columns and types of built relations and sources."""

    metadata: ArtifactMetadata = ArtifactMetadata()
    nodes: dict[str, CatalogTable] = Field(default_factory=dict)
    sources: dict[str, CatalogTable] = Field(default_factory=dict)

    def columns(self, unique_id: str) -> dict[str, str] | None:
        """Column name (lower case) to type of one node or source, None when the catalog lacks it."""
        table = self.nodes.get(unique_id) or self.sources.get(unique_id)
        if table is None:
            return None
        ordered = sorted(table.columns.values(), key=lambda column: column.index)
        return {column.name.lower(): column.type for column in ordered}


def _check_version(data: Mapping[str, Any], kind: str, origin: str) -> None:
    metadata = data.get("metadata")
    version_url = metadata.get("dbt_schema_version") if isinstance(metadata, Mapping) else None
    if not version_url:
        raise ArtifactError(f"{origin}: no metadata.dbt_schema_version; is this a dbt {kind} artifact?")
    match = _VERSION_RE.search(str(version_url))
    if match is None or match["kind"] != kind:
        raise ArtifactError(f"{origin}: schema {version_url!r} is not a dbt {kind} artifact")
    version = int(match["version"])
    supported = SUPPORTED_VERSIONS[kind]
    if version not in supported:
        raise ArtifactError(
            f"{origin}: {kind} schema v{version} is not supported (supported: v{supported.start}.."
            f"v{supported.stop - 1}); regenerate the artifacts with dbt 1.5 to 1.11"
        )


def _parse(data: Any, model: type[_Lenient], kind: str, origin: str) -> Any:
    if not isinstance(data, Mapping):
        raise ArtifactError(f"{origin}: expected a JSON object for a dbt {kind} artifact")
    _check_version(data, kind, origin)
    if kind == "manifest":
        data = _flatten_manifest(data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ArtifactError(f"{origin}: unexpected content at {where}: {first['msg']}") from None


def _flatten_manifest(data: Mapping[str, Any]) -> dict[str, Any]:
    # Sources, exposures, unit tests ... live in their own sections; parity treats them all as nodes.
    nodes: dict[str, Any] = {}
    for section in GRAPH_SECTIONS:
        items = data.get(section) or {}
        if isinstance(items, Mapping):
            for unique_id, item in items.items():
                if isinstance(item, Mapping):
                    nodes[unique_id] = {**item, "unique_id": item.get("unique_id", unique_id)}
                    if "resource_type" not in item:
                        nodes[unique_id]["resource_type"] = unique_id.split(".", 1)[0]
    return {"metadata": data.get("metadata", {}), "nodes": nodes, "disabled": data.get("disabled") or {}}


def _read(path: Path) -> Any:
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"{path} does not exist") from None
    except OSError as exc:
        raise ArtifactError(f"{path} could not be read: {exc}") from None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path} is not valid JSON (truncated or corrupt?): {exc}") from None
    except RecursionError:
        raise ArtifactError(f"{path} is not valid JSON: it is nested too deeply") from None


def parse_manifest(data: Any, origin: str = "manifest.json") -> Manifest:
    """Build a Manifest from already-loaded JSON; `origin` names the file in errors."""
    result: Manifest = _parse(data, Manifest, "manifest", origin)
    return result


def parse_run_results(data: Any, origin: str = "run_results.json") -> RunResults:
    """Build RunResults from already-loaded JSON; `origin` names the file in errors."""
    result: RunResults = _parse(data, RunResults, "run-results", origin)
    return result


def parse_catalog(data: Any, origin: str = "catalog.json") -> Catalog:
    """Build a Catalog from already-loaded JSON; `origin` names the file in errors."""
    result: Catalog = _parse(data, Catalog, "catalog", origin)
    return result


def load_manifest(path: Path) -> Manifest:
    """Read manifest.json. Raises ArtifactError naming the file when it is unusable."""
    return parse_manifest(_read(path), str(path))


def load_run_results(path: Path) -> RunResults:
    """Read run_results.json. Raises ArtifactError naming the file when it is unusable."""
    return parse_run_results(_read(path), str(path))


def load_catalog(path: Path) -> Catalog:
    """Read catalog.json. Raises ArtifactError naming the file when it is unusable."""
    return parse_catalog(_read(path), str(path))


class RunArtifacts(BaseModel):
    """The artifacts of one side of a comparison: one dbt step's manifest and results, maybe a catalog."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    label: str
    manifest: Manifest
    run_results: RunResults
    catalog: Catalog | None = None
    target: str | None = None

    @classmethod
    def from_dir(cls, folder: Path, label: str, target: str | None = None) -> RunArtifacts:
        """Load manifest.json, run_results.json and (when present) catalog.json from one folder."""
        catalog_path = folder / "catalog.json"
        return cls(
            label=label,
            manifest=load_manifest(folder / "manifest.json"),
            run_results=load_run_results(folder / "run_results.json"),
            catalog=load_catalog(catalog_path) if catalog_path.is_file() else None,
            target=target,
        )
