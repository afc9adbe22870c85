"""Build noise: what differs between two runs of the same code, why, and the settings that stop it failing parity.

Two builds of the same code can differ without any migration fault: run timestamps (`current_timestamp`), random
values and ids, and window functions whose ORDER BY has ties (`row_number`, `ntile`, `lag`... number tied rows in
any order). Three pieces deal with it:

- `sql_noise` reads a node's compiled SQL (sqlglot, in the manifest's adapter dialect) and names the expressions
  that make its output vary between runs, with the output column they feed.
- `row_pairing` explains a relation whose fingerprints differ although no single column does: every column holds
  the same values on both sides, combined into different rows. Leaving out one column at a time finds the columns
  whose values move between rows (typically a row number among rows that tie on the window's ORDER BY).
- `calibrate` turns the comparison of an A/A pair (two runs of the same code) into `nondeterministic` findings
  with their evidence and the `[parity.values]` / `[parity.row_counts]` lines that make the next comparison
  leave that noise out (a real change elsewhere in the same relations still fails).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from dbt2prefect.fingerprint_sql import FingerprintSpec
from dbt2prefect.warehouse import RelationStats, Warehouse
from parity.artifacts import Manifest
from parity.model import Calibration, Check, Finding, JobParity, NoiseEntry, Reason, Severity, Verdict

MAX_PAIRING_COLUMNS = 64  # leave-one-out fingerprints: one aggregate per column, each over all other columns

_CLOCK = (exp.CurrentTimestamp, exp.CurrentDate, exp.CurrentTime, exp.CurrentDatetime)
_CLOCK_NAMES = frozenset(
    {
        "now",
        "getdate",
        "sysdate",
        "systimestamp",
        "localtimestamp",
        "localtime",
        "current_timestamp",
        "get_current_timestamp",
        "transaction_timestamp",
        "statement_timestamp",
        "clock_timestamp",
        "sysdatetime",
    }
)
_RANDOM = (exp.Rand, exp.Uuid)
_RANDOM_NAMES = frozenset(
    {"random", "rand", "uuid", "uuid_string", "gen_random_uuid", "newid", "uniform", "randstr", "seq4", "seq8"}
)
# Ranking functions that give tied rows different results; rank/dense_rank/percent_rank/cume_dist give ties equal
# values and are stable.
_TIE_PRONE = (exp.RowNumber, exp.Ntile, exp.FirstValue, exp.LastValue, exp.Lag, exp.Lead, exp.NthValue)
_TIE_PRONE_NAMES = frozenset({"row_number", "ntile", "first_value", "last_value", "lag", "lead", "nth_value"})


@dataclass(frozen=True)
class SqlNoise:
    """One expression of a node's compiled SQL whose value can change between two runs of the same code."""

    kind: str  # 'clock', 'random' or 'tie_prone_window'
    column: str | None  # the output column (alias) it feeds, when it is a projection
    expression: str
    ties: tuple[str, ...] = ()  # for windows: the PARTITION BY and ORDER BY expressions whose ties reorder rows

    def describe(self) -> str:
        where = f"`{self.column}` = " if self.column else ""
        text = f"{where}{self.expression}"
        if self.kind == "clock":
            return f"{text} (the run's clock: differs on every run)"
        if self.kind == "random":
            return f"{text} (random: differs on every run)"
        ties = ", ".join(self.ties) if self.ties else "no ORDER BY"
        return f"{text} (rows tying on ({ties}) are numbered in any order; add a unique column to the ORDER BY)"


def _name(node: exp.Expr) -> str:
    return node.name.lower() if isinstance(node, exp.Anonymous) else ""


def _is_clock(node: exp.Expr) -> bool:
    if isinstance(node, _CLOCK):
        return True
    name = _name(node)
    if name == "convert_timezone":
        return any(_is_clock(child) for child in node.iter_expressions())
    return name in _CLOCK_NAMES


def _output_column(node: exp.Expr) -> str | None:
    """The alias of the select-list item holding `node`, None when it is not in a select list (a filter...)."""
    current: exp.Expr | None = node
    while current is not None:
        parent = current.parent
        if isinstance(current, exp.Alias) and isinstance(parent, exp.Select) and current in parent.expressions:
            return current.alias
        if isinstance(parent, exp.Select) and current in parent.expressions:
            return current.output_name or None
        if isinstance(current, exp.Select):
            return None
        current = parent
    return None


def _short(node: exp.Expr, dialect: str) -> str:
    text = " ".join(node.sql(dialect=dialect).split())
    return text if len(text) <= 160 else text[:159] + "…"


def sql_noise(compiled_sql: str | None, dialect: str) -> list[SqlNoise] | None:
    """Expressions of one node's compiled SQL that vary between runs; None when the SQL cannot be parsed.

    Args:
        compiled_sql: the node's `compiled_code` from a run's manifest.
        dialect: sqlglot dialect (the manifest's adapter type: `duckdb`, `snowflake`...).
    """
    if not compiled_sql:
        return []
    try:
        statements = sqlglot.parse(compiled_sql, read=dialect or None)
    except SqlglotError:
        return None
    found: list[SqlNoise] = []
    seen: set[tuple[str, str | None, str]] = set()
    for statement in statements:
        if statement is None:
            continue
        for node in statement.walk():
            noise: SqlNoise | None = None
            if _is_clock(node):
                noise = SqlNoise("clock", _output_column(node), _short(node, dialect))
            elif isinstance(node, (*_RANDOM, exp.TableSample)) or _name(node) in _RANDOM_NAMES:
                noise = SqlNoise("random", _output_column(node), _short(node, dialect))
            elif isinstance(node, exp.Window) and (
                isinstance(node.this, _TIE_PRONE) or _name(node.this) in _TIE_PRONE_NAMES
            ):
                order = node.args.get("order")
                ties = [_short(p, dialect) for p in node.args.get("partition_by") or []]
                ties += [_short(o.this, dialect) for o in (order.expressions if order else [])]
                noise = SqlNoise("tie_prone_window", _output_column(node), _short(node, dialect), tuple(ties))
            if noise is not None and (noise.kind, noise.column, noise.expression) not in seen:
                seen.add((noise.kind, noise.column, noise.expression))
                found.append(noise)
    return found


def node_noise(manifest: Manifest, unique_id: str) -> list[SqlNoise] | None:
    """`sql_noise` of one node of a run's manifest (its compiled code, in the manifest's adapter dialect)."""
    node = manifest.get(unique_id)
    if node is None:
        return []
    return sql_noise(node.compiled_code, manifest.metadata.adapter_type or "")


# -- rows that pair up differently -------------------------------------------------------------------------------
def row_pairing(
    baseline_wh: Warehouse,
    base: RelationStats,
    base_spec: FingerprintSpec,
    candidate_wh: Warehouse,
    cand: RelationStats,
    cand_spec: FingerprintSpec,
) -> list[str] | None:
    """The columns whose values move between rows: leaving any one of them out makes both sides equal.

    Returns the lower-case names (empty when no single column's removal reconciles the sides), or None when the
    relation is too wide to try (more than MAX_PAIRING_COLUMNS compared columns).
    """
    if len(base_spec.columns) > MAX_PAIRING_COLUMNS or len(base_spec.columns) < 2:
        return None
    b = baseline_wh.leave_one_out_fingerprints(base, base_spec)
    c = candidate_wh.leave_one_out_fingerprints(cand, cand_spec)
    return [column for column, fp in b.items() if c.get(column) == fp]


def pairing_message(moved: Sequence[str], noise: Sequence[SqlNoise] | None) -> str:
    """What "(no single column)" means for one relation, in terms a reviewer can act on."""
    base = "rows pair up differently: every column holds the same values on both sides, combined into different rows"
    if not moved:
        return base + "; no single column's values account for it (several columns move together)"
    text = f"{base}; leaving out {', '.join(moved)} makes both sides equal, so their values go to different rows"
    windows = [n for n in noise or [] if n.kind == "tie_prone_window" and (n.column or "").lower() in moved]
    if windows:
        text += "; from " + "; ".join(n.describe() for n in windows)
    return text


# -- calibration ---------------------------------------------------------------------------------------------------
def _toml(text: str) -> str:
    """A TOML basic string (JSON's escaping is valid TOML for these names)."""
    return json.dumps(text)


def calibrate(job: JobParity, manifest: Manifest) -> JobParity:
    """Turn the comparison of two runs of the same code into a calibration.

    Every value or row-count difference of the pair is build noise: it becomes a `nondeterministic` finding
    (explained, with the evidence and the SQL that causes it) and an entry with the settings line that leaves it
    out of later comparisons. Other failures (nodes, statuses, schema) stay errors: two runs of the same code
    should not differ there.
    """
    entries: list[NoiseEntry] = []
    rows = {row.unique_id: row for row in job.value_checks}
    counts = {row.unique_id: row for row in job.row_counts}
    findings: list[Finding] = []
    for finding in job.findings:
        if finding.severity is not Severity.ERROR or finding.reason not in (
            Reason.VALUES_DIFFER.value,
            Reason.ROW_COUNT_DIFFERS.value,
        ):
            findings.append(finding)
            continue
        uid = finding.subject
        node, noise = manifest.get(uid), node_noise(manifest, uid)
        name = node.name if node is not None else uid
        causes = [n.describe() for n in noise or []]
        if noise is None:
            causes = ["(the compiled SQL could not be parsed)"]
        if finding.reason == Reason.ROW_COUNT_DIFFERS.value:
            count = counts.get(uid)
            delta = abs(count.delta or 0) if count is not None else 0
            entry = NoiseEntry(
                unique_id=uid,
                name=name,
                kind="row_count",
                evidence=finding.message,
                sql=causes,
                setting=f"{_toml(name)} = {{ abs = {max(delta, 1)} }}",
                section="parity.row_counts.models",
            )
        else:
            row = rows[uid]
            columns = row.differing_columns or row.moved_columns
            kind = "columns" if row.differing_columns else ("row_pairing" if row.moved_columns else "rows")
            if columns:
                setting = f"{_toml(name)} = [{', '.join(_toml(c) for c in columns)}]"
                section = "parity.values.nondeterministic"
            else:  # no column to leave out: the relation's rows themselves vary (e.g. a top-N over ties)
                setting = _toml(f"{Reason.VALUES_DIFFER.value}:{uid}")
                section = "parity"
            entry = NoiseEntry(
                unique_id=uid,
                name=name,
                kind=kind,
                columns=columns,
                evidence=finding.message + (f" ({row.note})" if row.note else ""),
                sql=causes,
                setting=setting,
                section=section,
            )
        entries.append(entry)
        findings.append(
            Finding(
                check=finding.check,
                reason=Reason.NONDETERMINISTIC.value,
                severity=Severity.EXPLAINED,
                subject=uid,
                message=f"{finding.message} between two runs of the same code",
                explanation=f"build noise; SQL: {'; '.join(causes) or 'no varying expression found'}; "
                f"to leave it out, add under [{entry.section}]: {entry.setting}",
            )
        )
    failed = any(f.severity is Severity.ERROR for f in findings)
    calibration = Calibration(first_run=job.baseline.run_id, second_run=job.candidate.run_id, entries=entries)
    return job.model_copy(
        update={
            "findings": findings,
            "verdict": Verdict.FAIL if failed else Verdict.PASS,
            "calibration": calibration,
        }
    )


def excluded_noise_finding(unique_id: str, entries: Sequence[str], manifest: Manifest) -> Finding:
    """The INFO finding of columns left out as nondeterministic, with the SQL that explains them."""
    noise = node_noise(manifest, unique_id)
    causes = "; ".join(n.describe() for n in noise or []) or "no varying expression found in the compiled SQL"
    return Finding(
        check=Check.VALUES,
        reason=Reason.NONDETERMINISTIC.value,
        severity=Severity.INFO,
        subject=unique_id,
        message=f"not compared, nondeterministic: {', '.join(entries)}",
        explanation=f"SQL: {causes}",
    )


def differ_advice(unique_id: str, name: str, columns: Sequence[str], manifest: Manifest) -> str:
    """What to do about a value difference: the noise the compiled SQL explains, else fix or accept it."""
    noise = node_noise(manifest, unique_id) or []
    lowered = {c.lower() for c in columns}
    # An expression feeding a differing column; with no column named, any window over ties can reorder rows.
    varying = [
        n for n in noise if (n.column or "").lower() in lowered or (n.kind == "tie_prone_window" and not columns)
    ]
    accept = f"accepted = [{_toml(f'{Reason.VALUES_DIFFER.value}:{unique_id}')}]"
    if varying:
        cols = ", ".join(_toml(c) for c in columns)
        return (
            f"likely build noise: {'; '.join(n.describe() for n in varying)}. Confirm with `dbt2prefect parity "
            f"--calibrate`, then add under [parity.values.nondeterministic]: {_toml(name)} = [{cols}]; or make the "
            "SQL deterministic"
        )
    return (
        "fix the model or its inputs so both runs build the same values; if the difference is reviewed and "
        f"expected, add under [parity]: {accept}"
    )
