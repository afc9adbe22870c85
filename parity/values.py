"""Value parity: the same data, not only the same counts.

Per relation pair, a fingerprint of the compared columns is computed in each warehouse, in the same batched
query as the row counts (see `dbt2prefect.warehouse`). Only where fingerprints differ does parity drill down:
one statement per side names the differing columns (per-column fingerprints); when the model has a key (from
the settings, else a column with a `unique` test), a few more statements per side find a bounded sample of
differing keys: key-hash buckets (large relations only), the rows' hashes per key in the differing buckets,
then the values of the sampled keys. Nothing else is downloaded.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from dbt2prefect.fingerprint_sql import CompareColumn, Dialect, FingerprintSpec
from dbt2prefect.warehouse import Relation, RelationStats, Warehouse
from parity.artifacts import Manifest
from parity.model import Check, ColumnDiff, Finding, Reason, Severity, ValueRow, ValueSample, ValueStatus
from parity.noise import differ_advice, excluded_noise_finding, node_noise, pairing_message, row_pairing
from parity.rowcounts import RelationPair
from parity.settings import NONDETERMINISTIC_SOURCE, ParitySettings

FLOAT_TYPES = frozenset({"FLOAT", "FLOAT4", "FLOAT8", "REAL", "DOUBLE", "DOUBLE PRECISION"})
DIRECT_ROWS = 50_000  # relations up to this size skip the bucket step
ROWS_PER_BUCKET = 2_000
MAX_BUCKETS = 8_192
VALUE_CHARS = 120  # sampled values are cut to this many characters
SHOWN_COLUMNS = 8  # columns shown for a key found on one side only
LISTED_COLUMNS = 32  # columns checked key by key when no single column differs over the whole relation
NUMBER_TYPES = frozenset(
    {"NUMBER", "DECIMAL", "NUMERIC", "INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "BYTEINT", "HUGEINT",
     "UBIGINT", "UINTEGER", "USMALLINT", "UTINYINT", "UHUGEINT"}
)  # fmt: skip


@dataclass(frozen=True)
class ValuePlan:
    """What is fingerprinted for one pair, or why nothing is."""

    pair: RelationPair
    baseline_spec: FingerprintSpec | None = None
    candidate_spec: FingerprintSpec | None = None
    skip: Reason | None = None
    note: str | None = None
    excluded: tuple[str, ...] = ()
    floats: tuple[str, ...] = ()
    unhashable: tuple[str, ...] = ()
    nondeterministic: tuple[str, ...] = ()


@dataclass
class ValueResult:
    rows: list[ValueRow] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def _is_float(data_type: str) -> bool:
    return " ".join(data_type.upper().split()) in FLOAT_TYPES


def _is_number(data_type: str) -> bool:
    base = " ".join(data_type.upper().split("(")[0].split())
    return base in NUMBER_TYPES or base in FLOAT_TYPES


def plan_values(
    pairs: Sequence[RelationPair],
    baseline: Mapping[Relation, RelationStats],
    candidate: Mapping[Relation, RelationStats],
    settings: ParitySettings,
    same_engine: bool,
    dialect: Dialect | None = None,
) -> list[ValuePlan]:
    """Which columns of each pair enter the fingerprint (exclusions, float rounding, the engine's unhashable and
    semi-structured types), or the skip reason."""
    values = settings.values
    plans: list[ValuePlan] = []
    for pair in pairs:
        base, cand = baseline.get(pair.baseline), candidate.get(pair.candidate)
        if base is None or cand is None or not base.exists or not cand.exists:
            plans.append(ValuePlan(pair, skip=Reason.VALUES_SKIPPED_RELATION_MISSING))
            continue
        if not same_engine:
            plans.append(ValuePlan(pair, skip=Reason.VALUES_SKIPPED_ENGINES_DIFFER))
            continue
        base_cols, cand_cols = base.column_types(), cand.column_types()
        rules = values.exclusions_for(pair.unique_id, pair.node.name, pair.node.all_tags)
        excluded: list[str] = []
        noisy: list[str] = []
        compared: list[str] = []
        unhashable: list[str] = []
        as_json: set[str] = set()
        for column in sorted(set(base_cols) & set(cand_cols)):
            source = next((src for glob, src in rules if fnmatch.fnmatchcase(column, glob)), None)
            kinds = {dialect.comparability(t) for t in (base_cols[column], cand_cols[column])} if dialect else set()
            if source is not None and source.startswith(NONDETERMINISTIC_SOURCE):
                noisy.append(f"{column} ({source})")
            elif source is not None:
                excluded.append(f"{column} ({source})")
            elif "unhashable" in kinds:
                unhashable.append(f"{column} ({base_cols[column]}: not hashable)")
            else:
                compared.append(column)
                if "json" in kinds:
                    as_json.add(column)
        floats = [c for c in compared if _is_float(base_cols[c]) or _is_float(cand_cols[c])]
        if not compared:
            plans.append(
                ValuePlan(
                    pair,
                    skip=Reason.VALUES_SKIPPED_NO_COLUMNS,
                    excluded=tuple(excluded),
                    unhashable=tuple(unhashable),
                    nondeterministic=tuple(noisy),
                )
            )
            continue
        base_names = {name.lower(): name for name, _ in base.columns}
        cand_names = {name.lower(): name for name, _ in cand.columns}

        only_one_side = sorted(set(base_cols) ^ set(cand_cols))
        plans.append(
            ValuePlan(
                pair,
                _spec(base_names, base_cols, compared, floats, values.float_decimals, as_json),
                _spec(cand_names, cand_cols, compared, floats, values.float_decimals, as_json),
                note=f"columns on one side only (schema check): {', '.join(only_one_side)}" if only_one_side else None,
                excluded=tuple(excluded),
                floats=tuple(floats),
                unhashable=tuple(unhashable),
                nondeterministic=tuple(noisy),
            )
        )
    return plans


def _spec(
    names: Mapping[str, str],
    types: Mapping[str, str],
    compared: list[str],
    floats: list[str],
    decimals: int,
    as_json: set[str],
) -> FingerprintSpec:
    return FingerprintSpec.of(
        [
            CompareColumn(names[c], decimals if c in floats else None, c in as_json, types[c] if c in floats else None)
            for c in compared
        ]
    )


def fingerprint_specs(
    plans: Sequence[ValuePlan],
) -> tuple[dict[Relation, FingerprintSpec], dict[Relation, FingerprintSpec]]:
    """Per side, the spec of each relation that is fingerprinted in the batched pass."""
    base = {p.pair.baseline: p.baseline_spec for p in plans if p.baseline_spec is not None}
    cand = {p.pair.candidate: p.candidate_spec for p in plans if p.candidate_spec is not None}
    return base, cand


def ephemeral_rows(pairs: Sequence[RelationPair], manifest: Manifest) -> list[ValueRow]:
    """Ephemeral models have no relation: they are inlined into, and checked through, the relations selecting them."""
    children: dict[str, list[str]] = {}
    for pair in pairs:
        for parent in pair.node.depends_on.nodes:
            node = manifest.get(parent)
            if node is not None and node.materialized == "ephemeral":
                children.setdefault(parent, []).append(pair.unique_id)
    return [
        ValueRow(
            unique_id=uid,
            materialized="ephemeral",
            status=ValueStatus.SKIPPED,
            reason=Reason.VALUES_CHECKED_THROUGH_CHILDREN.value,
            note="inlined into " + ", ".join(sorted(kids)),
        )
        for uid, kids in sorted(children.items())
    ]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


@dataclass(frozen=True)
class _Side:
    warehouse: Warehouse
    stats: RelationStats
    spec: FingerprintSpec

    def column(self, lower: str) -> CompareColumn:
        return next(c for c in self.spec.columns if c.name.lower() == lower)


def _key(pair: RelationPair, manifest: Manifest, settings: ParitySettings) -> tuple[list[str], str] | None:
    configured = settings.values.key_for(pair.unique_id, pair.node.name)
    if configured is not None:
        return configured
    unique = manifest.unique_columns(pair.unique_id)
    return ([unique[0]], "test:unique") if unique else None


@dataclass
class _Drill:
    """What the key listing found: per-column counts and samples, and row-level counts."""

    samples: list[ValueSample] = field(default_factory=list)
    columns: list[ColumnDiff] = field(default_factory=list)
    changed: int = 0
    only_in_baseline: int | None = None
    only_in_candidate: int | None = None
    notes: list[str] = field(default_factory=list)


def _number(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _pair_text(baseline: Any, candidate: Any) -> tuple[str | None, str | None]:
    """Both values as text; where cutting at VALUE_CHARS would make them look equal, cut around the first
    difference instead, so a changed value never shows as equal."""
    b, c = _text(baseline), _text(candidate)
    if b != c or baseline is None or candidate is None:
        return b, c
    full_b, full_c = str(baseline), str(candidate)
    at = next(
        (i for i, (x, y) in enumerate(zip(full_b, full_c, strict=False)) if x != y), min(len(full_b), len(full_c))
    )
    start = max(0, at - 20)
    return "…" + full_b[start : start + VALUE_CHARS - 2] + "…", "…" + full_c[start : start + VALUE_CHARS - 2] + "…"


def _drill_keys(base: _Side, cand: _Side, key: list[str], listed: list[str], settings: ParitySettings) -> _Drill:
    """Per differing column, how many keys differ in it (and by how much for numbers) and up to
    `sample_rows` of them with both values; keys found on one side only.

    Statements per side: key-hash buckets (large relations only), then per key hash the row's fingerprint, a
    fingerprint per listed column and the largest value of each numeric one, then the values of the sampled keys.
    """
    limit = settings.values.sample_rows
    drill = _Drill()
    base_key = [CompareColumn(base.column(k).name) for k in key]
    cand_key = [CompareColumn(cand.column(k).name) for k in key]
    rows = max(base.stats.row_count or 0, cand.stats.row_count or 0)
    buckets, chosen_buckets, fetch, complete = 1, None, DIRECT_ROWS, True
    if rows > DIRECT_ROWS:
        buckets = min(MAX_BUCKETS, max(2, rows // ROWS_PER_BUCKET))
        b_fp = base.warehouse.bucket_fingerprints(base.stats, base.spec, base_key, buckets)
        c_fp = cand.warehouse.bucket_fingerprints(cand.stats, cand.spec, cand_key, buckets)
        differing_buckets = sorted(b for b in set(b_fp) | set(c_fp) if b_fp.get(b) != c_fp.get(b))
        chosen_buckets = differing_buckets[: max(1, DIRECT_ROWS // ROWS_PER_BUCKET)]
        complete = len(chosen_buckets) == len(differing_buckets)
        drill.notes.append(
            f"keys listed from {len(chosen_buckets)} of {len(differing_buckets)} differing key-hash buckets"
            + ("" if complete else ": counts are lower bounds")
        )
        fetch = ROWS_PER_BUCKET * 8 * max(len(chosen_buckets), 1)
    types = base.stats.column_types(), cand.stats.column_types()
    numbers = [c for c in listed if _is_number(types[0].get(c, "")) and _is_number(types[1].get(c, ""))]
    b_keys = base.warehouse.key_row_hashes(
        base.stats, base.spec, base_key, buckets, chosen_buckets, fetch + 1,
        [base.column(c) for c in listed], [base.column(c) for c in numbers],
    )  # fmt: skip
    c_keys = cand.warehouse.key_row_hashes(
        cand.stats, cand.spec, cand_key, buckets, chosen_buckets, fetch + 1,
        [cand.column(c) for c in listed], [cand.column(c) for c in numbers],
    )  # fmt: skip
    truncated = len(b_keys) > fetch or len(c_keys) > fetch
    if truncated:
        complete = False
        drill.notes.append("key listing cut off: counts are lower bounds, keys on one side only are not listed")
    changed = sorted(k for k in set(b_keys) & set(c_keys) if b_keys[k][0] != c_keys[k][0])
    drill.changed = len(changed)
    per_column = {
        column: [k for k in changed if b_keys[k][1 + i] != c_keys[k][1 + i]] for i, column in enumerate(listed)
    }
    for column in listed:
        largest: Decimal | None = None
        if column in numbers:
            at = 1 + len(listed) + numbers.index(column)
            for kh in per_column[column]:
                b_num, c_num = _number(b_keys[kh][at]), _number(c_keys[kh][at])
                if b_num is not None and c_num is not None and (largest is None or abs(b_num - c_num) > largest):
                    largest = abs(b_num - c_num)
        if per_column[column]:
            drill.columns.append(
                ColumnDiff(
                    column=column,
                    unequal_rows=len(per_column[column]),
                    complete=complete,
                    max_abs_diff=None if largest is None else float(largest),
                )
            )
    in_listed = set().union(*per_column.values()) if per_column else set()
    unlisted = [k for k in changed if k not in in_listed]
    if unlisted and listed:
        drill.notes.append(f"{len(unlisted)} changed key(s) differ only in columns not listed here")
    only_b: list[int] = []
    only_c: list[int] = []
    if not truncated:  # with a cut-off listing, a key missing from one listing may only have been cut off
        only_b, only_c = sorted(set(b_keys) - set(c_keys)), sorted(set(c_keys) - set(b_keys))
        drill.only_in_baseline, drill.only_in_candidate = len(only_b), len(only_c)
    if not limit:
        return drill
    chosen = list(
        dict.fromkeys([k for column in listed for k in per_column[column][:limit]] + only_b[:limit] + only_c[:limit])
    )
    shown = listed[:SHOWN_COLUMNS]
    b_rows = base.warehouse.rows_for_keys(
        base.stats, base_key, [base.column(c) for c in listed], chosen, len(chosen) * 4
    )
    c_rows = cand.warehouse.rows_for_keys(
        cand.stats, cand_key, [cand.column(c) for c in listed], chosen, len(chosen) * 4
    )

    def by_hash(found: list[tuple[Any, ...]]) -> dict[int, dict[str, Any]]:
        # first row per key wins
        return {int(row[0]): dict(zip([*key, *listed], row[1:], strict=True)) for row in reversed(found)}

    b_map, c_map = by_hash(b_rows), by_hash(c_rows)
    candidates: list[ValueSample] = []
    for column in listed:
        for kh in per_column[column][:limit]:
            b, c = b_map.get(kh), c_map.get(kh)
            if b is None or c is None:
                continue
            b_text, c_text = _pair_text(b[column], c[column])
            if b_text == c_text:
                continue  # a repeated key whose first rows agree in this column: nothing to show
            key_values = {k: _text(b[k]) for k in key}
            candidates.append(
                ValueSample(
                    kind="changed", column=column, key=key_values, baseline={column: b_text}, candidate={column: c_text}
                )
            )
    for kh in only_b[:limit]:
        if (found := b_map.get(kh)) is not None:
            key_values, row_values = {k: _text(found[k]) for k in key}, {c: _text(found[c]) for c in shown}
            candidates.append(ValueSample(kind="only_in_baseline", key=key_values, baseline=row_values))
    for kh in only_c[:limit]:
        if (found := c_map.get(kh)) is not None:
            key_values, row_values = {k: _text(found[k]) for k in key}, {c: _text(found[c]) for c in shown}
            candidates.append(ValueSample(kind="only_in_candidate", key=key_values, candidate=row_values))
    size = 0
    for sample in candidates:
        size += len(json.dumps(sample.model_dump()))
        if size > settings.values.sample_bytes:
            drill.notes.append(f"sample cut at {settings.values.sample_bytes} bytes")
            break
        drill.samples.append(sample)
    return drill


def compare_values(
    plans: Sequence[ValuePlan],
    baseline: Mapping[Relation, RelationStats],
    candidate: Mapping[Relation, RelationStats],
    baseline_wh: Warehouse,
    candidate_wh: Warehouse,
    manifest: Manifest,
    settings: ParitySettings,
) -> ValueResult:
    """Classify each pair from its fingerprints; drill into the differing ones (at most `max_drill_down`)."""
    result = ValueResult()
    decimals = settings.values.float_decimals
    drilled = 0
    for plan in plans:
        pair = plan.pair
        base, cand = baseline.get(pair.baseline), candidate.get(pair.candidate)
        common = {
            "unique_id": pair.unique_id,
            "materialized": pair.node.materialized,
            "excluded_columns": [*plan.excluded, *plan.nondeterministic, *plan.unhashable],
            "float_columns": list(plan.floats),
            "float_decimals": decimals if plan.floats else None,
            "note": plan.note,
        }
        if plan.excluded:
            result.findings.append(
                _info(Reason.COLUMNS_EXCLUDED, pair.unique_id, "not compared: " + ", ".join(plan.excluded))
            )
        if plan.nondeterministic:
            result.findings.append(excluded_noise_finding(pair.unique_id, plan.nondeterministic, manifest))
        if plan.unhashable:
            result.findings.append(
                _info(
                    Reason.COLUMN_NOT_HASHABLE,
                    pair.unique_id,
                    f"not compared: {', '.join(plan.unhashable)}; compare "
                    "them by hand or add a column derived from them (e.g. ST_ASWKB) to the model",
                )
            )
        if plan.floats:
            result.findings.append(
                _info(
                    Reason.FLOAT_PRECISION,
                    pair.unique_id,
                    f"compared at {decimals} decimal places: {', '.join(plan.floats)}",
                )
            )
        if plan.skip is not None or plan.baseline_spec is None or plan.candidate_spec is None:
            reason = plan.skip or Reason.VALUES_SKIPPED_NO_COLUMNS
            result.rows.append(ValueRow(status=ValueStatus.SKIPPED, reason=reason.value, **common))
            result.findings.append(_info(reason, pair.unique_id, _skip_message(reason, pair)))
            continue
        assert base is not None and cand is not None
        columns = len(plan.baseline_spec.columns)
        prints = {"baseline_fingerprint": base.fingerprint, "candidate_fingerprint": cand.fingerprint}
        if base.row_count != cand.row_count:
            reason = Reason.VALUES_SKIPPED_ROW_COUNTS_DIFFER
            result.rows.append(
                ValueRow(status=ValueStatus.SKIPPED, reason=reason.value, columns_compared=columns, **prints, **common)
            )
            result.findings.append(_info(reason, pair.unique_id, _skip_message(reason, pair)))
            continue
        if base.fingerprint == cand.fingerprint:
            result.rows.append(ValueRow(status=ValueStatus.EQUAL, columns_compared=columns, **prints, **common))
            continue
        differing: list[str] = []
        moved: list[str] = []
        samples: list[ValueSample] = []
        column_diffs: list[ColumnDiff] = []
        row_counts: dict[str, int | None] = {}
        key_info = _key(pair, manifest, settings)
        key: list[str] = []
        notes = [plan.note] if plan.note else []
        if drilled < settings.values.max_drill_down:
            drilled += 1
            b_side = _Side(baseline_wh, base, plan.baseline_spec)
            c_side = _Side(candidate_wh, cand, plan.candidate_spec)
            b_cols = baseline_wh.column_fingerprints(base, plan.baseline_spec)
            c_cols = candidate_wh.column_fingerprints(cand, plan.candidate_spec)
            differing = [c for c in b_cols if b_cols[c] != c_cols.get(c)]
            compared = [c.name.lower() for c in plan.baseline_spec.columns]
            if key_info is not None and all(k in compared for k in key_info[0]):
                key = key_info[0]
                listed = [c for c in (differing or compared) if c not in key][:LISTED_COLUMNS]
                drill = _drill_keys(b_side, c_side, key, listed, settings)
                samples, column_diffs, notes = drill.samples, drill.columns, notes + drill.notes
                row_counts = {
                    "rows_changed": drill.changed,
                    "rows_only_in_baseline": drill.only_in_baseline,
                    "rows_only_in_candidate": drill.only_in_candidate,
                }
            elif key_info is not None:
                notes.append(f"key {', '.join(key_info[0])} ({key_info[1]}) is not compared: no key sample")
                key_info = None
            else:
                notes.append("no key (configure parity.values.keys or add a unique test): no key sample")
            if not differing:
                found = row_pairing(baseline_wh, base, plan.baseline_spec, candidate_wh, cand, plan.candidate_spec)
                moved = found or []
                if found is None:
                    notes.append("no single column differs: the combination of values in rows differs")
                else:
                    notes.append(pairing_message(moved, node_noise(manifest, pair.unique_id)))
        else:
            result.findings.append(
                _info(
                    Reason.VALUES_NOT_DRILLED,
                    pair.unique_id,
                    f"more than {settings.values.max_drill_down} relations differ: columns and keys not named",
                )
            )
        row = ValueRow(
            status=ValueStatus.DIFFERENT,
            reason=Reason.VALUES_DIFFER.value,
            columns_compared=columns,
            differing_columns=differing,
            key=key,
            key_source=key_info[1] if key_info is not None and key else None,
            samples=samples,
            moved_columns=moved,
            column_diffs=column_diffs,
            **row_counts,
            **prints,
            **{**common, "note": "; ".join(notes) or None},
        )
        result.rows.append(row)
        accepted = settings.is_accepted(Reason.VALUES_DIFFER.value, pair.unique_id)
        result.findings.append(
            Finding(
                check=Check.VALUES,
                reason=Reason.VALUES_DIFFER.value,
                severity=Severity.EXPLAINED if accepted else Severity.ERROR,
                subject=pair.unique_id,
                message=_differ_message(row),
                explanation="accepted in the parity settings"
                if accepted
                else differ_advice(pair.unique_id, pair.node.name, differing or moved, manifest),
            )
        )
    return result


def _info(reason: Reason, subject: str, message: str) -> Finding:
    return Finding(check=Check.VALUES, reason=reason.value, severity=Severity.INFO, subject=subject, message=message)


def _skip_message(reason: Reason, pair: RelationPair) -> str:
    return {
        Reason.VALUES_SKIPPED_RELATION_MISSING: f"{pair.unique_id}: values not compared, the relation is missing on "
        "one side (row-count check)",
        Reason.VALUES_SKIPPED_ROW_COUNTS_DIFFER: f"{pair.unique_id}: values not compared, the row counts differ "
        "(row-count check)",
        Reason.VALUES_SKIPPED_ENGINES_DIFFER: f"{pair.unique_id}: values not compared, baseline and candidate are "
        "different engines whose hashes do not compare",
        Reason.VALUES_SKIPPED_NO_COLUMNS: f"{pair.unique_id}: values not compared, every column is excluded",
    }.get(reason, f"{pair.unique_id}: values not compared ({reason.value})")


def _differ_message(row: ValueRow) -> str:
    if row.differing_columns:
        text = f"{row.unique_id}: values differ in {', '.join(row.differing_columns)}"
    elif row.moved_columns:
        text = f"{row.unique_id}: values differ by row pairing: {', '.join(row.moved_columns)} go to different rows"
    else:
        text = f"{row.unique_id}: values differ in (no single column: rows pair up differently)"
    if row.samples:
        keys = "; ".join(", ".join(f"{k}={v}" for k, v in s.key.items()) for s in row.samples)
        text += f"; sample keys ({', '.join(row.key)}): {keys}"
    return text
