"""Warehouse access for metadata and batched aggregates: existence, columns, row counts and fingerprints.

Query budget, whatever the number of relations:
- `describe`: per database ONE information_schema query (which relations exist, table or view, their columns;
  on Snowflake also INFORMATION_SCHEMA.TABLES.ROW_COUNT, metadata without a scan).
- `measure`: per database ONE batched `select count(*), <fingerprint> ... UNION ALL ...` over the relations that
  need a count (DuckDB: all; Snowflake: views and anything fingerprinted) or a fingerprint.
- Drill-down statements (`column_fingerprints`, `bucket_fingerprints`, `key_row_hashes`, `rows_for_keys`) run
  only for the relations whose fingerprints differ, one statement each.
Every statement is counted in `queries_issued` so benchmarks and reports can show it.

Connections come from a dbt profile output dict. Credentials are passed to the driver and kept nowhere
else: not in reprs, errors or logs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from dbt2prefect.errors import ConfigError, ExternalServiceError
from dbt2prefect.fingerprint_sql import (
    CompareColumn,
    Dialect,
    DuckDBDialect,
    FingerprintSpec,
    SnowflakeDialect,
    literal,
    quote,
)
from dbt2prefect.snowflake_key import private_key_der, private_key_file_der

# Snowflake caps statement text at 1 MB: 500 branches per UNION ALL keeps far below it (a fingerprint branch of
# a wide relation is a few kB). DuckDB has no such cap.
SNOWFLAKE_UNION_CHUNK = 500
DUCKDB_UNION_CHUNK = 20_000


class WarehouseError(ExternalServiceError):
    """A warehouse query failed."""


@dataclass(frozen=True, order=True)
class Relation:
    """database.schema.identifier of one table or view (as dbt names it in the manifest)."""

    database: str
    schema: str
    identifier: str

    def __str__(self) -> str:
        return f"{self.database}.{self.schema}.{self.identifier}"

    def folded(self, upper: bool) -> tuple[str, str, str]:
        parts = (self.database, self.schema, self.identifier)
        return tuple(p.upper() if upper else p.lower() for p in parts)  # type: ignore[return-value]


@dataclass(frozen=True)
class RelationStats:
    """What the warehouse says about one relation; row_count and fingerprint are None until measured.

    `columns` holds (name as the warehouse spells it, data type) in ordinal order; `located` the schema and
    name as the warehouse spells them, for quoting.
    """

    relation: Relation
    exists: bool
    kind: str | None = None
    row_count: int | None = None
    columns: tuple[tuple[str, str], ...] = ()
    located: tuple[str, str] | None = None
    fingerprint: str | None = None

    def column_types(self) -> dict[str, str]:
        """Column name (lower case) to data type, in ordinal order."""
        return {name.lower(): data_type for name, data_type in self.columns}


class Warehouse(Protocol):
    """Read-only metadata and aggregate access used by parity."""

    queries_issued: int
    dialect: Dialect

    def describe(self, relations: Sequence[Relation]) -> dict[Relation, RelationStats]: ...

    def measure(
        self, described: Mapping[Relation, RelationStats], specs: Mapping[Relation, FingerprintSpec]
    ) -> dict[Relation, RelationStats]: ...

    def relation_stats(self, relations: Sequence[Relation]) -> dict[Relation, RelationStats]: ...

    def column_fingerprints(self, stats: RelationStats, spec: FingerprintSpec) -> dict[str, str]: ...

    def bucket_fingerprints(
        self, stats: RelationStats, spec: FingerprintSpec, key: Sequence[CompareColumn], buckets: int
    ) -> dict[int, str]: ...

    def key_row_hashes(
        self,
        stats: RelationStats,
        spec: FingerprintSpec,
        key: Sequence[CompareColumn],
        buckets: int,
        in_buckets: Sequence[int] | None,
        limit: int,
    ) -> dict[int, str]: ...

    def rows_for_keys(
        self,
        stats: RelationStats,
        key: Sequence[CompareColumn],
        columns: Sequence[CompareColumn],
        key_hashes: Sequence[int],
        limit: int,
    ) -> list[tuple[Any, ...]]: ...

    def close(self) -> None: ...


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _SqlWarehouse:
    """Shared batching logic; subclasses say how to connect and how to describe a database's relations."""

    upper_case = False
    union_chunk = DUCKDB_UNION_CHUNK
    dialect: Dialect = DuckDBDialect()

    def __init__(self) -> None:
        self.queries_issued = 0
        self._conn: Any = None

    # -- driver-specific ---------------------------------------------------------------------
    def _connect(self) -> Any:
        raise NotImplementedError

    def _describe_sql(self, database: str, schemas: Sequence[str]) -> str:
        """Rows of (schema, name, table type, metadata row count or null, column, data type), ordinal order."""
        raise NotImplementedError

    def _counts_from_metadata(self) -> bool:
        """True when the described row_count is exact for tables (Snowflake metadata)."""
        return False

    # -- shared ------------------------------------------------------------------------------
    def _execute(self, sql: str) -> list[tuple[Any, ...]]:
        if self._conn is None:
            self._conn = self._connect()
        self.queries_issued += 1
        try:
            cursor = self._conn.cursor()
            try:
                cursor.execute(sql)
                return list(cursor.fetchall())
            finally:
                cursor.close()
        except Exception as exc:  # drivers raise their own hierarchies; name the statement kind, not the data
            raise WarehouseError(f"{type(self).__name__}: query failed: {str(exc).splitlines()[0][:300]}") from None

    def ping(self) -> None:
        """Run `select 1`: the connection works and the warehouse answers.

        Raises:
            WarehouseError: it cannot connect or the query fails.
        """
        self._execute("select 1")

    def _group(self, relations: Iterable[Relation]) -> dict[str, list[Relation]]:
        by_db: dict[str, list[Relation]] = defaultdict(list)
        for relation in relations:
            by_db[relation.database].append(relation)
        return by_db

    def _key(self, schema: Any, name: Any) -> tuple[str, str]:
        if self.upper_case:
            return str(schema).upper(), str(name).upper()
        return str(schema).lower(), str(name).lower()

    def describe(self, relations: Sequence[Relation]) -> dict[Relation, RelationStats]:
        """Existence, kind, columns (and on Snowflake tables the metadata row count): one query per database."""
        result: dict[Relation, RelationStats] = {}
        for database, group in sorted(self._group(relations).items()):
            schemas = sorted({r.folded(self.upper_case)[1] for r in group})
            found: dict[tuple[str, str], dict[str, Any]] = {}
            for schema, name, kind, row_count, column, data_type in self._execute(
                self._describe_sql(database, schemas)
            ):
                entry = found.setdefault(
                    self._key(schema, name),
                    {
                        "located": (str(schema), str(name)),
                        "kind": "view" if "VIEW" in str(kind).upper() else "table",
                        "row_count": row_count,
                        "columns": [],
                    },
                )
                if column is not None and all(str(column) != seen for seen, _ in entry["columns"]):
                    entry["columns"].append((str(column), str(data_type)))
            for relation in group:
                located = found.get(relation.folded(self.upper_case)[1:])
                if located is None:
                    result[relation] = RelationStats(relation, exists=False)
                    continue
                metadata_rows = located["row_count"]
                exact = located["kind"] == "table" and self._counts_from_metadata() and metadata_rows is not None
                result[relation] = RelationStats(
                    relation,
                    True,
                    located["kind"],
                    int(metadata_rows) if exact else None,
                    tuple(located["columns"]),
                    located["located"],
                )
        return result

    def _qualified(self, stats: RelationStats) -> str:
        assert stats.located is not None, "only existing relations are queried"
        database = stats.relation.database.upper() if self.upper_case else stats.relation.database
        return ".".join(quote(part) for part in (database, *stats.located))

    def measure(
        self, described: Mapping[Relation, RelationStats], specs: Mapping[Relation, FingerprintSpec]
    ) -> dict[Relation, RelationStats]:
        """Row counts where not known and fingerprints where asked: one batched query per database."""
        result = dict(described)
        pending = [
            stats
            for stats in described.values()
            if stats.exists and (stats.row_count is None or stats.relation in specs)
        ]
        for _, group in sorted(self._group(s.relation for s in pending).items()):
            for chunk in _chunks([described[r] for r in group], self.union_chunk):
                parts = [
                    self.dialect.measure_part(index, self._qualified(stats), specs.get(stats.relation))
                    for index, stats in enumerate(chunk)
                ]
                for index, count, fingerprint in self._execute("\nunion all\n".join(parts)):
                    stats = chunk[int(index)]
                    result[stats.relation] = replace(
                        stats, row_count=int(count), fingerprint=None if fingerprint is None else str(fingerprint)
                    )
        return result

    def relation_stats(self, relations: Sequence[Relation]) -> dict[Relation, RelationStats]:
        """Existence, kind, columns and row count of every relation, with at most two queries per database."""
        return self.measure(self.describe(relations), {})

    # -- drill-down: one statement each, only where fingerprints differ --------------------------
    def column_fingerprints(self, stats: RelationStats, spec: FingerprintSpec) -> dict[str, str]:
        """Fingerprint per compared column (keyed by the column's lower-case name)."""
        [row] = self._execute(self.dialect.column_fingerprints(self._qualified(stats), spec))
        return {column.name.lower(): str(value) for column, value in zip(spec.columns, row, strict=True)}

    def bucket_fingerprints(
        self, stats: RelationStats, spec: FingerprintSpec, key: Sequence[CompareColumn], buckets: int
    ) -> dict[int, str]:
        sql = self.dialect.bucket_fingerprints(self._qualified(stats), spec, key, buckets)
        return {int(bucket): str(fp) for bucket, fp in self._execute(sql)}

    def key_row_hashes(
        self,
        stats: RelationStats,
        spec: FingerprintSpec,
        key: Sequence[CompareColumn],
        buckets: int,
        in_buckets: Sequence[int] | None,
        limit: int,
    ) -> dict[int, str]:
        sql = self.dialect.key_row_hashes(self._qualified(stats), spec, key, buckets, in_buckets, limit)
        return {int(kh): str(fp) for kh, fp in self._execute(sql)}

    def rows_for_keys(
        self,
        stats: RelationStats,
        key: Sequence[CompareColumn],
        columns: Sequence[CompareColumn],
        key_hashes: Sequence[int],
        limit: int,
    ) -> list[tuple[Any, ...]]:
        """(key hash, *key values, *column values) of the rows with the given key hashes."""
        if not key_hashes:
            return []
        return self._execute(self.dialect.rows_for_keys(self._qualified(stats), key, columns, key_hashes, limit))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> _SqlWarehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DuckDBWarehouse(_SqlWarehouse):
    """One DuckDB file (read-only) plus its attached databases; the file's stem is its database name."""

    def __init__(self, path: Path, attach: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__()
        self.path = Path(path)
        self.attach = [dict(item) for item in attach]

    def __repr__(self) -> str:
        return f"DuckDBWarehouse(path={str(self.path)!r})"

    def _connect(self) -> Any:
        import duckdb

        if not self.path.exists():
            raise WarehouseError(f"DuckDB database {self.path} does not exist; run dbt against that target first")
        try:
            try:
                conn = duckdb.connect(str(self.path), read_only=True)
            except duckdb.ConnectionException:
                # dbt-duckdb in this same process holds the file open read-write (a candidate run just ended);
                # DuckDB then allows only that configuration. Parity still issues SELECTs only.
                conn = duckdb.connect(str(self.path))
            for item in self.attach:
                alias = item.get("alias") or Path(str(item["path"])).stem
                conn.execute(f"attach if not exists {literal(str(item['path']))} as {quote(str(alias))} (read_only)")
        except duckdb.Error as exc:
            raise WarehouseError(f"could not open DuckDB database {self.path}: {exc}") from None
        return conn

    def _describe_sql(self, database: str, schemas: Sequence[str]) -> str:
        in_list = ", ".join(literal(s) for s in schemas)
        return (
            "select t.table_schema, t.table_name, t.table_type, null as row_count, c.column_name, c.data_type "
            "from information_schema.tables t left join information_schema.columns c on "
            "c.table_catalog = t.table_catalog and c.table_schema = t.table_schema and c.table_name = t.table_name "
            f"where lower(t.table_catalog) = {literal(database.lower())} and lower(t.table_schema) in ({in_list}) "
            "order by t.table_schema, t.table_name, c.ordinal_position"
        )


SESSION_NAMES = ("role", "warehouse", "database")
"""What a Snowflake session needs to run dbt: `select 1` answers without any of them."""


class SnowflakeWarehouse(_SqlWarehouse):
    """Snowflake through snowflake-connector-python; table row counts from metadata, fingerprints by HASH_AGG."""

    upper_case = True
    union_chunk = SNOWFLAKE_UNION_CHUNK
    dialect: Dialect = SnowflakeDialect()

    def __init__(self, connect_args: Mapping[str, Any]) -> None:
        super().__init__()
        self._connect_args = dict(connect_args)

    def __repr__(self) -> str:
        # Only non-secret fields: never the password or key.
        return f"SnowflakeWarehouse(account={self._connect_args.get('account')!r}, user={self._connect_args.get('user')!r})"

    def _connect(self) -> Any:
        import snowflake.connector

        try:
            return snowflake.connector.connect(**self._connect_args)
        except Exception as exc:
            raise WarehouseError(
                f"could not connect to Snowflake account {self._connect_args.get('account')!r} as "
                f"{self._connect_args.get('user')!r}: {type(exc).__name__}"
            ) from None

    def _counts_from_metadata(self) -> bool:
        return True

    def session_context(self, names: Sequence[str] = SESSION_NAMES) -> dict[str, str | None]:
        """What the session runs as: `current_<name>()` for each name (role, warehouse, database), None when
        Snowflake answers NULL (the user has no default and the profile sets none, or it is not granted).

        Raises:
            WarehouseError: it cannot connect or the query fails.
        """
        (row,) = self._execute("select " + ", ".join(f"current_{name}()" for name in names))
        return {name: None if value is None else str(value) for name, value in zip(names, row, strict=True)}

    def _describe_sql(self, database: str, schemas: Sequence[str]) -> str:
        in_list = ", ".join(literal(s) for s in schemas)
        db = quote(database.upper())
        # COLUMNS lists the columns of tables and views; TABLES adds the type and ROW_COUNT (metadata, no scan).
        # The left join keeps a view correct where TABLES does not list views.
        return (
            "select c.table_schema, c.table_name, coalesce(t.table_type, 'VIEW') as table_type, t.row_count, "
            f"c.column_name, c.data_type from {db}.information_schema.columns c "
            f"left join {db}.information_schema.tables t "
            "on t.table_schema = c.table_schema and t.table_name = c.table_name "
            f"where upper(c.table_schema) in ({in_list}) "
            "order by c.table_schema, c.table_name, c.ordinal_position"
        )


_SNOWFLAKE_KEYS = {
    "account": "account",
    "user": "user",
    "password": "password",
    "role": "role",
    "warehouse": "warehouse",
    "database": "database",
    "schema": "schema",
    "authenticator": "authenticator",
    "host": "host",
    "port": "port",
    "protocol": "protocol",
}


def warehouse_from_profile_output(output: Mapping[str, Any]) -> _SqlWarehouse:
    """A read-only warehouse handle for one dbt profile output (the dict under `outputs.<target>`).

    Raises:
        ConfigError: the adapter type is not supported or a required field is missing (no secret is shown).
    """
    kind = str(output.get("type", "")).lower()
    if kind == "duckdb":
        path = output.get("path")
        if not path or path == ":memory:":
            raise ConfigError("the DuckDB profile output has no file `path`; parity needs a database file")
        return DuckDBWarehouse(Path(str(path)), output.get("attach") or ())
    if kind == "snowflake":
        missing = [key for key in ("account", "user") if not output.get(key)]
        if missing:
            raise ConfigError(f"the Snowflake profile output lacks {', '.join(missing)}")
        args = {target: output[source] for source, target in _SNOWFLAKE_KEYS.items() if output.get(source)}
        passphrase = output.get("private_key_passphrase")
        if output.get("private_key"):
            args["private_key"] = private_key_der(str(output["private_key"]), str(passphrase) if passphrase else None)
        elif output.get("private_key_path"):
            args["private_key"] = private_key_file_der(
                str(output["private_key_path"]), str(passphrase) if passphrase else None
            )
        args.setdefault("session_parameters", {"QUERY_TAG": "dbt2prefect-parity"})
        return SnowflakeWarehouse(args)
    raise ConfigError(f"parity supports duckdb and snowflake profile outputs, not {kind or 'an untyped output'!r}")
