"""Warehouse access for metadata and batched aggregates: existence, columns, row counts and fingerprints.

Query budget, whatever the number of relations:
- `describe`: per database ONE information_schema query (which relations exist, table or view, their columns;
  on Snowflake also INFORMATION_SCHEMA.TABLES.ROW_COUNT, metadata without a scan).
- `measure`: per database one batched `select count(*), <fingerprint> ... UNION ALL ...` over the relations that
  need a count (DuckDB: all; Snowflake: views and anything fingerprinted) or a fingerprint; on Snowflake split
  into as many statements as keep each under its 1 MB statement limit (about 150 relations of 150 columns each).
- Drill-down statements (`column_fingerprints`, `leave_one_out_fingerprints`, `bucket_fingerprints`,
  `key_row_hashes`, `rows_for_keys`) run only for the relations whose fingerprints differ, one statement each.
Every statement is counted in `queries_issued` so benchmarks and reports can show it. A statement timeout, when
set, cancels any statement that runs longer.

Connections come from a dbt profile output dict. Credentials are passed to the driver and kept nowhere
else: not in reprs, errors or logs.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
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

# Snowflake caps statement text at 1 MB (1,048,576 bytes): a batched statement takes up to 500 branches and stops
# before 900,000 bytes (a fingerprint branch of a 150-column relation is about 6 kB, so 500 of them would not fit).
# DuckDB has no such cap.
SNOWFLAKE_UNION_CHUNK = 500
SNOWFLAKE_STATEMENT_BYTES = 900_000
DUCKDB_UNION_CHUNK = 20_000


def time_travel_clause(as_of: datetime) -> str:
    """Snowflake Time Travel: a table as it was at `as_of` (within the table's DATA_RETENTION_TIME_IN_DAYS)."""
    return f"at(timestamp => {literal(as_of.isoformat())}::timestamp_tz)"


class WarehouseError(ExternalServiceError):
    """A warehouse query failed."""


@dataclass(frozen=True, order=True)
class Relation:
    """database.schema.identifier of one table or view (as dbt names it in the manifest).

    `quoted` says which parts dbt quotes (its quoting config, as the manifest's relation_name shows it): on
    Snowflake an unquoted name resolves to upper case and a quoted one keeps its case.
    """

    database: str
    schema: str
    identifier: str
    quoted: tuple[bool, bool, bool] = (False, False, False)

    def __str__(self) -> str:
        return f"{self.database}.{self.schema}.{self.identifier}"

    def folded(self, upper: bool) -> tuple[str, str, str]:
        """The parts as the warehouse resolves them: upper-case unless quoted (Snowflake), else lower case."""
        parts = (self.database, self.schema, self.identifier)
        if upper:
            return tuple(p if q else p.upper() for p, q in zip(parts, self.quoted, strict=True))  # type: ignore[return-value]
        return tuple(p.lower() for p in parts)  # type: ignore[return-value]


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
    case_sensitive: bool = False

    def column_types(self) -> dict[str, str]:
        """Column name (lower case) to data type, in ordinal order."""
        return {name.lower(): data_type for name, data_type in self.columns}

    def resolved_columns(self) -> dict[str, str]:
        """Column name as the warehouse resolves it (as stored where names are case-sensitive) to full type."""
        return {(name if self.case_sensitive else name.lower()): data_type for name, data_type in self.columns}


class Warehouse(Protocol):
    """Read-only metadata and aggregate access used by parity."""

    queries_issued: int
    dialect: Dialect
    time_travel: bool
    as_of: datetime | None

    def describe(self, relations: Sequence[Relation]) -> dict[Relation, RelationStats]: ...

    def measure(
        self, described: Mapping[Relation, RelationStats], specs: Mapping[Relation, FingerprintSpec]
    ) -> dict[Relation, RelationStats]: ...

    def relation_stats(self, relations: Sequence[Relation]) -> dict[Relation, RelationStats]: ...

    def column_fingerprints(self, stats: RelationStats, spec: FingerprintSpec) -> dict[str, str]: ...

    def leave_one_out_fingerprints(self, stats: RelationStats, spec: FingerprintSpec) -> dict[str, str]: ...

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
        columns: Sequence[CompareColumn] = (),
        numbers: Sequence[CompareColumn] = (),
    ) -> dict[int, tuple[Any, ...]]: ...

    def rows_for_keys(
        self,
        stats: RelationStats,
        key: Sequence[CompareColumn],
        columns: Sequence[CompareColumn],
        key_hashes: Sequence[int],
        limit: int,
    ) -> list[tuple[Any, ...]]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Statement:
    """One batched statement and the relations of its branches, in branch order (`idx` = position)."""

    sql: str
    relations: tuple[RelationStats, ...]


def _batches(items: Sequence[tuple[RelationStats, int]], count: int, size: int | None) -> Iterable[list[RelationStats]]:
    """Groups of at most `count` items and (when set) `size` bytes by the items' lengths; an item is never split."""
    batch: list[RelationStats] = []
    used = 0
    for stats, length in items:
        if batch and (len(batch) >= count or (size is not None and used + length > size)):
            yield batch
            batch, used = [], 0
        batch.append(stats)
        used += length
    if batch:
        yield batch


class _SqlWarehouse:
    """Shared batching logic; subclasses say how to connect and how to describe a database's relations."""

    upper_case = False
    union_chunk = DUCKDB_UNION_CHUNK
    statement_bytes: int | None = None
    dialect: Dialect = DuckDBDialect()
    time_travel = False
    """True when tables can be read as of a past time (`as_of`)."""

    def __init__(self, statement_timeout: int | None = None) -> None:
        self.queries_issued = 0
        self.statement_timeout = statement_timeout
        self._conn: Any = None
        self.as_of: datetime | None = None

    # -- driver-specific ---------------------------------------------------------------------
    def _connect(self) -> Any:
        raise NotImplementedError

    def _describe_sql(self, database: str, schemas: Sequence[str]) -> str:
        """Rows of (schema, name, table type, metadata row count or null, column, data type), ordinal order."""
        raise NotImplementedError

    def _counts_from_metadata(self) -> bool:
        """True when the described row_count is exact for tables (Snowflake metadata)."""
        return False

    def _run(self, sql: str) -> list[tuple[Any, ...]]:
        """Execute one statement on the open connection (the driver enforces the statement timeout)."""
        cursor = self._conn.cursor()
        try:
            cursor.execute(sql)
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def _timed_out(self, exc: Exception) -> bool:
        """True when the driver cancelled the statement for the statement timeout."""
        return False

    # -- shared ------------------------------------------------------------------------------
    def _execute(self, sql: str) -> list[tuple[Any, ...]]:
        if self._conn is None:
            self._conn = self._connect()
        self.queries_issued += 1
        try:
            return self._run(sql)
        except Exception as exc:  # drivers raise their own hierarchies; name the statement kind, not the data
            if self.statement_timeout is not None and self._timed_out(exc):
                raise WarehouseError(
                    f"{type(self).__name__}: a statement ran longer than {self.statement_timeout} s and was "
                    "cancelled; raise [parity] statement_timeout_seconds or use a larger warehouse"
                ) from None
            raise WarehouseError(f"{type(self).__name__}: query failed: {str(exc).splitlines()[0][:300]}") from None

    def ping(self) -> None:
        """Run `select 1`: the connection works and the warehouse answers.

        Raises:
            WarehouseError: it cannot connect or the query fails.
        """
        self._execute("select 1")

    def _group(self, relations: Iterable[Relation]) -> dict[str, list[Relation]]:
        """Relations by database, as the warehouse resolves its name."""
        by_db: dict[str, list[Relation]] = defaultdict(list)
        for relation in relations:
            by_db[relation.folded(self.upper_case)[0]].append(relation)
        return by_db

    def _key(self, schema: Any, name: Any) -> tuple[str, str]:
        if self.upper_case:  # INFORMATION_SCHEMA spells names as resolved: compare them exactly
            return str(schema), str(name)
        return str(schema).lower(), str(name).lower()

    def describe_statements(self, relations: Sequence[Relation]) -> list[tuple[list[Relation], str]]:
        """(relations of one database, its INFORMATION_SCHEMA statement): one per database, the schemas in play.

        Schemas are listed as the warehouse folds unquoted names and as dbt spells them (a quoted name keeps it).
        """
        statements = []
        for database, group in sorted(self._group(relations).items()):
            schemas = sorted({r.folded(self.upper_case)[1] for r in group} | {r.schema for r in group})
            statements.append((group, self._describe_sql(database, schemas)))
        return statements

    def describe(self, relations: Sequence[Relation]) -> dict[Relation, RelationStats]:
        """Existence, kind, columns (and on Snowflake tables the metadata row count): one query per database."""
        result: dict[Relation, RelationStats] = {}
        for group, sql in self.describe_statements(relations):
            found: dict[tuple[str, str], dict[str, Any]] = {}
            for schema, name, kind, row_count, column, data_type in self._execute(sql):
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
                    case_sensitive=self.upper_case,
                )
        return result

    def _qualified(self, stats: RelationStats) -> str:
        return self.relation_sql(stats)

    def relation_sql(self, stats: RelationStats) -> str:
        """How statements name an existing relation: quoted as resolved, with Time Travel when `as_of` is set."""
        assert stats.located is not None, "only existing relations are queried"
        database = stats.relation.folded(True)[0] if self.upper_case else stats.relation.database
        name = ".".join(quote(part) for part in (database, *stats.located))
        if self.as_of is not None and stats.kind == "table":
            name += " " + time_travel_clause(self.as_of)
        return name

    def measure(
        self, described: Mapping[Relation, RelationStats], specs: Mapping[Relation, FingerprintSpec]
    ) -> dict[Relation, RelationStats]:
        """Row counts where not known and fingerprints where asked: one batched query per database."""
        result = dict(described)
        for statement in self.measure_statements(described, specs):
            for index, count, fingerprint in self._execute(statement.sql):
                stats = statement.relations[int(index)]
                result[stats.relation] = replace(
                    stats, row_count=int(count), fingerprint=None if fingerprint is None else str(fingerprint)
                )
        return result

    def measure_statements(
        self, described: Mapping[Relation, RelationStats], specs: Mapping[Relation, FingerprintSpec]
    ) -> list[Statement]:
        """The statements `measure` issues: per database, UNION ALL batches within the engine's statement limits."""
        pending = [
            stats
            for stats in described.values()
            if stats.exists and (stats.row_count is None or stats.relation in specs)
        ]
        statements: list[Statement] = []
        for _, group in sorted(self._group(s.relation for s in pending).items()):
            # A branch's length with index 0: a later index adds a few digits, which the size margin covers.
            sized = [
                (stats, len(self.dialect.measure_part(0, self._qualified(stats), specs.get(stats.relation)).encode()))
                for stats in (described[r] for r in group)
            ]
            for batch in _batches(sized, self.union_chunk, self.statement_bytes):
                sql = "\nunion all\n".join(
                    self.dialect.measure_part(index, self._qualified(stats), specs.get(stats.relation))
                    for index, stats in enumerate(batch)
                )
                statements.append(Statement(sql, tuple(batch)))
        return statements

    def relation_stats(self, relations: Sequence[Relation]) -> dict[Relation, RelationStats]:
        """Existence, kind, columns and row count of every relation, with at most two queries per database."""
        return self.measure(self.describe(relations), {})

    # -- drill-down: one statement each, only where fingerprints differ --------------------------
    def column_fingerprints(self, stats: RelationStats, spec: FingerprintSpec) -> dict[str, str]:
        """Fingerprint per compared column (keyed by the column's lower-case name)."""
        [row] = self._execute(self.dialect.column_fingerprints(self._qualified(stats), spec))
        return {column.name.lower(): str(value) for column, value in zip(spec.columns, row, strict=True)}

    def leave_one_out_fingerprints(self, stats: RelationStats, spec: FingerprintSpec) -> dict[str, str]:
        """Per compared column (lower-case name), the fingerprint of every other column."""
        [row] = self._execute(self.dialect.leave_one_out_fingerprints(self._qualified(stats), spec))
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
        columns: Sequence[CompareColumn] = (),
        numbers: Sequence[CompareColumn] = (),
    ) -> dict[int, tuple[Any, ...]]:
        """Per key hash: (row fingerprint, a fingerprint per column of `columns`, the largest of each `numbers`)."""
        sql = self.dialect.key_row_hashes(
            self._qualified(stats), spec, key, buckets, in_buckets, limit, columns, numbers
        )
        return {
            int(row[0]): (str(row[1]), *(str(v) for v in row[2 : 2 + len(columns)]), *row[2 + len(columns) :])
            for row in self._execute(sql)
        }

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

    def __init__(
        self, path: Path, attach: Sequence[Mapping[str, Any]] = (), statement_timeout: int | None = None
    ) -> None:
        super().__init__(statement_timeout)
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
            # `attach if not exists` is not used: DuckDB (2.0.1) can spin in it for good when another database
            # instance of this process (dbt-duckdb's, after an in-process run) has the same file attached.
            attached = {row[0] for row in conn.execute("select database_name from duckdb_databases()").fetchall()}
            for item in self.attach:
                alias = str(item.get("alias") or Path(str(item["path"])).stem)
                if alias not in attached:
                    conn.execute(f"attach {literal(str(item['path']))} as {quote(alias)} (read_only)")
        except duckdb.Error as exc:
            raise WarehouseError(f"could not open DuckDB database {self.path}: {exc}") from None
        return conn

    def _run(self, sql: str) -> list[tuple[Any, ...]]:
        """DuckDB has no statement timeout setting: a timer interrupts the statement's cursor when one is set."""
        cursor = self._conn.cursor()
        timer = threading.Timer(self.statement_timeout, cursor.interrupt) if self.statement_timeout else None
        try:
            if timer is not None:
                timer.start()
            cursor.execute(sql)
            return list(cursor.fetchall())
        finally:
            if timer is not None:
                timer.cancel()
            cursor.close()

    def _timed_out(self, exc: Exception) -> bool:
        return "INTERRUPT" in str(exc).upper()

    def _describe_sql(self, database: str, schemas: Sequence[str]) -> str:
        in_list = ", ".join(literal(s.lower()) for s in sorted({s.lower() for s in schemas}))
        return (
            "select t.table_schema, t.table_name, t.table_type, null as row_count, c.column_name, c.data_type "
            "from information_schema.tables t left join information_schema.columns c on "
            "c.table_catalog = t.table_catalog and c.table_schema = t.table_schema and c.table_name = t.table_name "
            f"where lower(t.table_catalog) = {literal(database.lower())} and lower(t.table_schema) in ({in_list}) "
            "order by t.table_schema, t.table_name, c.ordinal_position"
        )


SNOWFLAKE_FULL_TYPE = (
    "c.data_type || case when c.data_type = 'NUMBER' and c.numeric_precision is not null "
    "then '(' || c.numeric_precision || ',' || coalesce(c.numeric_scale, 0) || ')' "
    "when c.character_maximum_length is not null then '(' || c.character_maximum_length || ')' "
    "else '' end"
)
"""INFORMATION_SCHEMA.COLUMNS.DATA_TYPE names the base type only (NUMBER, TEXT): the full type adds precision and
scale and length, so a NUMBER(38,2) -> NUMBER(38,3) or VARCHAR(16) -> VARCHAR(32) change shows."""

SESSION_NAMES = ("role", "warehouse", "database")
"""What a Snowflake session needs to run dbt: `select 1` answers without any of them."""


class SnowflakeWarehouse(_SqlWarehouse):
    """Snowflake through snowflake-connector-python; table row counts from metadata, fingerprints by HASH_AGG."""

    upper_case = True
    time_travel = True
    union_chunk = SNOWFLAKE_UNION_CHUNK
    statement_bytes = SNOWFLAKE_STATEMENT_BYTES
    dialect: Dialect = SnowflakeDialect()

    def __init__(self, connect_args: Mapping[str, Any], statement_timeout: int | None = None) -> None:
        super().__init__(statement_timeout)
        self._connect_args = dict(connect_args)
        if statement_timeout is not None:
            # Enforced by Snowflake on every statement of the session (error 000630 when reached).
            parameters = dict(self._connect_args.get("session_parameters") or {})
            parameters["STATEMENT_TIMEOUT_IN_SECONDS"] = int(statement_timeout)
            self._connect_args["session_parameters"] = parameters

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
        return self.as_of is None  # ROW_COUNT is now, not as of the run: count tables read with Time Travel

    def _timed_out(self, exc: Exception) -> bool:
        return getattr(exc, "errno", None) == 630 or "timeout" in str(exc).lower()

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
        db = quote(database)  # as resolved: upper case unless dbt quotes it
        # COLUMNS lists the columns of tables and views; TABLES adds the type and ROW_COUNT (metadata, no scan).
        # The left join keeps a view correct where TABLES does not list views. Both views are filtered by plain
        # predicates on TABLE_SCHEMA against the names as stored: a function on the column makes Snowflake list
        # the whole database's INFORMATION_SCHEMA first (error 090030 on large databases).
        return (
            "select c.table_schema, c.table_name, coalesce(t.table_type, 'VIEW') as table_type, t.row_count, "
            f"c.column_name, {SNOWFLAKE_FULL_TYPE} as data_type from {db}.information_schema.columns c "
            f"left join {db}.information_schema.tables t "
            f"on t.table_schema = c.table_schema and t.table_name = c.table_name and t.table_schema in ({in_list}) "
            f"where c.table_schema in ({in_list}) "
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


def warehouse_from_profile_output(output: Mapping[str, Any], statement_timeout: int | None = None) -> _SqlWarehouse:
    """A read-only warehouse handle for one dbt profile output (the dict under `outputs.<target>`).

    `statement_timeout` (seconds) cancels any statement that runs longer (Snowflake: the session's
    STATEMENT_TIMEOUT_IN_SECONDS; DuckDB: an interrupt).

    Raises:
        ConfigError: the adapter type is not supported or a required field is missing (no secret is shown).
    """
    kind = str(output.get("type", "")).lower()
    if kind == "duckdb":
        path = output.get("path")
        if not path or path == ":memory:":
            raise ConfigError("the DuckDB profile output has no file `path`; parity needs a database file")
        return DuckDBWarehouse(Path(str(path)), output.get("attach") or (), statement_timeout)
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
        return SnowflakeWarehouse(args, statement_timeout)
    raise ConfigError(f"parity supports duckdb and snowflake profile outputs, not {kind or 'an untyped output'!r}")


def output_location(output: Mapping[str, Any]) -> str | None:
    """Where a dbt profile output writes: the DuckDB file, or the Snowflake account, database and schema.

    Two outputs with the same location write the same relations (no secret is part of it); None when the
    output does not say (an in-memory DuckDB, an adapter parity does not read).
    """
    kind = str(output.get("type", "")).lower()
    if kind == "duckdb":
        path = output.get("path")
        return None if not path or path == ":memory:" else f"duckdb:{Path(str(path)).resolve()}"
    if kind == "snowflake" and output.get("account") and output.get("database"):
        parts = (output["account"], output["database"], output.get("schema") or "")
        return "snowflake:" + ".".join(str(part).upper() for part in parts)
    return None
