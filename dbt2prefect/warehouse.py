"""Warehouse access for metadata and batched aggregates: row counts and columns of many relations at once.

Query budget, whatever the number of relations:
- DuckDB: per database one information_schema query (which relations exist, table or view) and ONE
  batched `count(*) ... UNION ALL` over the relations that exist.
- Snowflake: per database one INFORMATION_SCHEMA.TABLES query (ROW_COUNT is metadata, no scan) and ONE
  batched `count(*) ... UNION ALL` for views only.
- Columns: one information_schema.columns query per database.
Every statement is counted in `queries_issued` so benchmarks and reports can show it.

Connections come from a dbt profile output dict. Credentials are passed to the driver and kept nowhere
else: not in reprs, errors or logs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from dbt2prefect.errors import ConfigError, ExternalServiceError

# Snowflake caps statement text at 1 MB: 500 views per UNION ALL keeps far below it. DuckDB has no such cap.
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
    """What the warehouse says about one relation: None row_count when it does not exist."""

    relation: Relation
    exists: bool
    kind: str | None = None
    row_count: int | None = None


class Warehouse(Protocol):
    """Read-only metadata access used by parity."""

    queries_issued: int

    def relation_stats(self, relations: Sequence[Relation]) -> dict[Relation, RelationStats]: ...

    def columns(self, relations: Sequence[Relation]) -> dict[Relation, dict[str, str]]: ...

    def close(self) -> None: ...


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _SqlWarehouse:
    """Shared batching logic; subclasses say how to connect and how to list a database's relations."""

    upper_case = False
    union_chunk = DUCKDB_UNION_CHUNK

    def __init__(self) -> None:
        self.queries_issued = 0
        self._conn: Any = None

    # -- driver-specific ---------------------------------------------------------------------
    def _connect(self) -> Any:
        raise NotImplementedError

    def _list_sql(self, database: str, schemas: Sequence[str]) -> str:
        raise NotImplementedError

    def _columns_sql(self, database: str, schemas: Sequence[str]) -> str:
        raise NotImplementedError

    def _counts_from_listing(self) -> bool:
        """True when the listing's row_count is exact for tables (Snowflake metadata)."""
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

    def _group(self, relations: Sequence[Relation]) -> dict[str, list[Relation]]:
        by_db: dict[str, list[Relation]] = defaultdict(list)
        for relation in relations:
            by_db[relation.database].append(relation)
        return by_db

    def _listing(
        self, database: str, relations: Sequence[Relation]
    ) -> dict[tuple[str, str], tuple[str, str, str, Any]]:
        schemas = sorted({r.folded(self.upper_case)[1] for r in relations})
        listing: dict[tuple[str, str], tuple[str, str, str, Any]] = {}
        for schema, name, kind, row_count in self._execute(self._list_sql(database, schemas)):
            key = (
                (str(schema).upper(), str(name).upper())
                if self.upper_case
                else (str(schema).lower(), str(name).lower())
            )
            normalized = "view" if "VIEW" in str(kind).upper() else "table"
            # INFORMATION_SCHEMA.TABLES lists views as well; keep the first (most specific) row per name.
            listing.setdefault(key, (str(schema), str(name), normalized, row_count))
        return listing

    def relation_stats(self, relations: Sequence[Relation]) -> dict[Relation, RelationStats]:
        """Existence, kind and row count of every relation, with at most two queries per database."""
        result: dict[Relation, RelationStats] = {}
        for database, group in sorted(self._group(relations).items()):
            listing = self._listing(database, group)
            to_count: list[tuple[Relation, str, str]] = []
            for relation in group:
                _, schema, ident = relation.folded(self.upper_case)
                found = listing.get((schema, ident))
                if found is None:
                    result[relation] = RelationStats(relation, exists=False)
                    continue
                real_schema, real_name, kind, row_count = found
                if kind == "table" and self._counts_from_listing() and row_count is not None:
                    result[relation] = RelationStats(relation, True, kind, int(row_count))
                else:
                    result[relation] = RelationStats(relation, True, kind, None)
                    to_count.append((relation, real_schema, real_name))
            for chunk in _chunks(to_count, self.union_chunk):
                parts = [
                    f"select {index} as idx, count(*) as n from {self._qualified(database, schema, name)}"
                    for index, (_, schema, name) in enumerate(chunk)
                ]
                for index, count in self._execute("\nunion all\n".join(parts)):
                    relation = chunk[int(index)][0]
                    result[relation] = RelationStats(relation, True, result[relation].kind, int(count))
        return result

    def _qualified(self, database: str, schema: str, name: str) -> str:
        return ".".join(_quote(part) for part in (database, schema, name))

    def columns(self, relations: Sequence[Relation]) -> dict[Relation, dict[str, str]]:
        """Column name (lower case) to data type, in ordinal order, one query per database."""
        result: dict[Relation, dict[str, str]] = {}
        for database, group in sorted(self._group(relations).items()):
            schemas = sorted({r.folded(self.upper_case)[1] for r in group})
            wanted = {r.folded(self.upper_case)[1:]: r for r in group}
            for schema, name, column, data_type in self._execute(self._columns_sql(database, schemas)):
                key = (
                    (str(schema).upper(), str(name).upper())
                    if self.upper_case
                    else (str(schema).lower(), str(name).lower())
                )
                relation = wanted.get(key)
                if relation is not None:
                    result.setdefault(relation, {})[str(column).lower()] = str(data_type)
        return result

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
                conn.execute(f"attach if not exists {_literal(str(item['path']))} as {_quote(str(alias))} (read_only)")
        except duckdb.Error as exc:
            raise WarehouseError(f"could not open DuckDB database {self.path}: {exc}") from None
        return conn

    def _list_sql(self, database: str, schemas: Sequence[str]) -> str:
        in_list = ", ".join(_literal(s) for s in schemas)
        return (
            "select table_schema, table_name, table_type, null as row_count from information_schema.tables "
            f"where lower(table_catalog) = {_literal(database.lower())} and lower(table_schema) in ({in_list})"
        )

    def _columns_sql(self, database: str, schemas: Sequence[str]) -> str:
        in_list = ", ".join(_literal(s) for s in schemas)
        return (
            "select table_schema, table_name, column_name, data_type from information_schema.columns "
            f"where lower(table_catalog) = {_literal(database.lower())} and lower(table_schema) in ({in_list}) "
            "order by table_schema, table_name, ordinal_position"
        )


class SnowflakeWarehouse(_SqlWarehouse):
    """Snowflake through snowflake-connector-python; tables counted from metadata, views by count(*)."""

    upper_case = True
    union_chunk = SNOWFLAKE_UNION_CHUNK

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

    def _counts_from_listing(self) -> bool:
        return True

    def _list_sql(self, database: str, schemas: Sequence[str]) -> str:
        in_list = ", ".join(_literal(s) for s in schemas)
        db = _quote(database.upper())
        # TABLES lists views too on Snowflake; the VIEWS branch keeps one statement correct where it does not.
        return (
            f"select table_schema, table_name, table_type, row_count from {db}.information_schema.tables "
            f"where upper(table_schema) in ({in_list})\nunion all\n"
            f"select table_schema, table_name, 'VIEW', null from {db}.information_schema.views "
            f"where upper(table_schema) in ({in_list})"
        )

    def _columns_sql(self, database: str, schemas: Sequence[str]) -> str:
        in_list = ", ".join(_literal(s) for s in schemas)
        return (
            "select table_schema, table_name, column_name, data_type "
            f"from {_quote(database.upper())}.information_schema.columns "
            f"where upper(table_schema) in ({in_list}) order by table_schema, table_name, ordinal_position"
        )

    def _qualified(self, database: str, schema: str, name: str) -> str:
        return ".".join(_quote(part) for part in (database.upper(), schema, name))


_SNOWFLAKE_KEYS = {
    "account": "account",
    "user": "user",
    "password": "password",
    "role": "role",
    "warehouse": "warehouse",
    "database": "database",
    "schema": "schema",
    "authenticator": "authenticator",
    "private_key_path": "private_key_file",
    "private_key_passphrase": "private_key_file_pwd",
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
        if output.get("private_key"):
            args["private_key"] = _load_private_key(str(output["private_key"]), output.get("private_key_passphrase"))
            args.pop("private_key_file_pwd", None)
        args.setdefault("session_parameters", {"QUERY_TAG": "dbt2prefect-parity"})
        return SnowflakeWarehouse(args)
    raise ConfigError(f"parity supports duckdb and snowflake profile outputs, not {kind or 'an untyped output'!r}")


def _load_private_key(pem: str, passphrase: Any) -> bytes:
    """DER bytes of a PEM private key, as the Snowflake connector expects (never logged)."""
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(
            pem.encode(), password=str(passphrase).encode() if passphrase else None
        )
    except (ValueError, TypeError):
        raise ConfigError(
            "the Snowflake profile's private_key is not a readable PEM key (or wrong passphrase)"
        ) from None
    return key.private_bytes(
        encoding=serialization.Encoding.DER,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
