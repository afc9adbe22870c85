"""SQL of content fingerprints, per warehouse dialect: whole relations, single columns, key buckets, key rows.

A fingerprint is an aggregate of row hashes computed in the warehouse, so nothing is downloaded:
- DuckDB: `sum(hash(c1, c2, ...))` as a decimal string. A sum of 64-bit hashes in a HUGEINT is independent of
  row order and counts duplicate rows (an XOR would cancel pairs of equal rows).
- Snowflake: `HASH_AGG(c1, c2, ...)`, order independent and 0 (never NULL) for no rows.
Columns always enter in one canonical order (sorted by lower-case name), which makes the fingerprint independent
of column order. Float columns enter rounded to a configured number of decimal places (on DuckDB, a DOUBLE column
by scaling: `round(x * 1e6) / 1e6`, because `round(x, 6)` costs more than hashing all the other columns of a row).

Not every type hashes: Snowflake's HASH_AGG rejects GEOGRAPHY and GEOMETRY (such columns are left out, with a
reason code, see `Dialect.comparability`) and semi-structured values (VARIANT, OBJECT, ARRAY) enter as their JSON
text (`TO_JSON`), which compares them by content.

The same two sides are always hashed by the same engine: fingerprints of different engines are not comparable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class CompareColumn:
    """One column as it enters a hash: its name in the warehouse, rounded when it is a float, as JSON text when
    it is semi-structured (`as_json`); `data_type` is its type on this side where known (the dialect may round
    a type its own way)."""

    name: str
    round_to: int | None = None
    as_json: bool = False
    data_type: str | None = None


@dataclass(frozen=True)
class FingerprintSpec:
    """The columns of one relation that are fingerprinted, in canonical order."""

    columns: tuple[CompareColumn, ...]

    @classmethod
    def of(cls, columns: Sequence[CompareColumn]) -> FingerprintSpec:
        return cls(tuple(sorted(columns, key=lambda column: (column.name.lower(), column.name))))


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def base_type(data_type: str) -> str:
    """`NUMBER(38,0)` -> `NUMBER`, `ARRAY(VARCHAR)` -> `ARRAY`: the type's name, upper case."""
    return " ".join(data_type.upper().split("(", 1)[0].split())


class Dialect:
    """How one engine hashes; subclasses differ in the aggregate, the casts and the types they cannot hash."""

    name = "generic"
    unhashable_types: frozenset[str] = frozenset()
    json_types: frozenset[str] = frozenset()

    def comparability(self, data_type: str) -> str:
        """'hash' (as is), 'json' (as its JSON text) or 'unhashable' (left out of every hash, with a reason)."""
        kind = base_type(data_type)
        if kind in self.unhashable_types:
            return "unhashable"
        return "json" if kind in self.json_types else "hash"

    def value(self, column: CompareColumn) -> str:
        quoted = quote(column.name)
        return quoted if column.round_to is None else f"round({quoted}, {int(column.round_to)})"

    def hashed(self, column: CompareColumn) -> str:
        """The column as it enters a row hash; `value` is the same value as a reader sees it (e.g. in `max`)."""
        return self.value(column)

    def row_hash(self, columns: Sequence[CompareColumn]) -> str:
        return f"hash({', '.join(self.hashed(c) for c in columns)})"

    def set_fingerprint(self, columns: Sequence[CompareColumn]) -> str:
        raise NotImplementedError

    def bucket(self, key: Sequence[CompareColumn], buckets: int) -> str:
        return f"mod({self.row_hash(key)}, {int(buckets)})"

    # -- statements ----------------------------------------------------------------------------
    def measure_part(self, index: int, relation: str, spec: FingerprintSpec | None) -> str:
        """One branch of the batched pass: count(*) and, when asked, the fingerprint."""
        fingerprint = self.set_fingerprint(spec.columns) if spec is not None else "null"
        return f"select {index} as idx, count(*) as n, {fingerprint} as fp from {relation}"

    def column_fingerprints(self, relation: str, spec: FingerprintSpec) -> str:
        """One statement: a fingerprint per compared column, in spec order."""
        parts = [f"{self.set_fingerprint([column])} as c{i}" for i, column in enumerate(spec.columns)]
        return f"select {', '.join(parts)} from {relation}"

    def leave_one_out_fingerprints(self, relation: str, spec: FingerprintSpec) -> str:
        """One statement: per compared column, the fingerprint of all the other columns, in spec order."""
        parts = [
            f"{self.set_fingerprint([c for c in spec.columns if c is not column])} as c{i}"
            for i, column in enumerate(spec.columns)
        ]
        return f"select {', '.join(parts)} from {relation}"

    def bucket_fingerprints(
        self, relation: str, spec: FingerprintSpec, key: Sequence[CompareColumn], buckets: int
    ) -> str:
        """Fingerprints per bucket of the key's hash: where, in a large relation, the differing rows are."""
        return (
            f"select {self.bucket(key, buckets)} as b, {self.set_fingerprint(spec.columns)} as fp "
            f"from {relation} group by 1"
        )

    def key_row_hashes(
        self,
        relation: str,
        spec: FingerprintSpec,
        key: Sequence[CompareColumn],
        buckets: int,
        in_buckets: Sequence[int] | None,
        limit: int,
        columns: Sequence[CompareColumn] = (),
        numbers: Sequence[CompareColumn] = (),
    ) -> str:
        """Per key hash, the fingerprint of its rows (a key may repeat); only the given buckets when set.

        `columns` add one fingerprint per column (which columns differ for this key), `numbers` the largest
        value of each (the value itself for a unique key: the size of a numeric difference).
        """
        where = ""
        if in_buckets is not None:
            where = f" where {self.bucket(key, buckets)} in ({', '.join(str(int(b)) for b in in_buckets)})"
        extra = "".join(f", {self.set_fingerprint([c])} as c{i}" for i, c in enumerate(columns))
        extra += "".join(f", max({self.value(c)}) as n{i}" for i, c in enumerate(numbers))
        return (
            f"select {self.row_hash(key)} as kh, {self.set_fingerprint(spec.columns)} as fp{extra} "
            f"from {relation}{where} group by 1 limit {int(limit)}"
        )

    def rows_for_keys(
        self,
        relation: str,
        key: Sequence[CompareColumn],
        columns: Sequence[CompareColumn],
        key_hashes: Sequence[int],
        limit: int,
    ) -> str:
        """Key hash, key values and the given columns of the rows whose key hashes are listed."""
        selected = ", ".join(quote(c.name) for c in [*key, *columns])
        hashes = ", ".join(str(int(h)) for h in key_hashes)
        return (
            f"select {self.row_hash(key)} as kh, {selected} from {relation} "
            f"where {self.row_hash(key)} in ({hashes}) limit {int(limit)}"
        )


class DuckDBDialect(Dialect):
    name = "duckdb"
    float64_types = frozenset({"DOUBLE", "FLOAT8", "DOUBLE PRECISION"})

    def hashed(self, column: CompareColumn) -> str:
        """A DOUBLE rounded by scaling, `round(x * 1e6) / 1e6`: DuckDB's `round(x, 6)` rounds the exact binary value
        and costs about as much as hashing five other columns. Both round half away from zero at the same places;
        they differ only for a value within a double's precision of a half-way point (0.0000005 is stored just
        below 5e-7: `round(x, 6)` gives 0, the scaled form 0.000001), and the same form is used on both sides, so
        equal values still hash equal. Values too large to scale (|x| >= 1e(300 - d), already whole numbers) enter
        as they are. Other types (DECIMAL, REAL) keep `round(x, d)`, so a column whose type differs between the
        sides hashes as before."""
        if column.round_to is None or column.data_type is None or base_type(column.data_type) not in self.float64_types:
            return super().hashed(column)
        quoted, decimals = quote(column.name), int(column.round_to)
        scale = f"1e{decimals}"
        return (
            f"case when abs({quoted}) < 1e{300 - decimals} then round({quoted} * {scale}) / {scale} else {quoted} end"
        )

    def set_fingerprint(self, columns: Sequence[CompareColumn]) -> str:
        return f"coalesce(sum({self.row_hash(columns)}), 0)::varchar"


class SnowflakeDialect(Dialect):
    name = "snowflake"
    # HASH/HASH_AGG reject the geospatial types; semi-structured values are hashed through their JSON text.
    unhashable_types = frozenset({"GEOGRAPHY", "GEOMETRY"})
    json_types = frozenset({"VARIANT", "OBJECT", "ARRAY"})

    def value(self, column: CompareColumn) -> str:
        return f"to_json({quote(column.name)})" if column.as_json else super().value(column)

    def set_fingerprint(self, columns: Sequence[CompareColumn]) -> str:
        return f"to_varchar(hash_agg({', '.join(self.value(c) for c in columns)}))"
