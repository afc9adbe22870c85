"""The parity report: typed rows per check, findings with reason codes, verdicts per job and overall.

The report is data only; `parity.frames` turns it into pandas DataFrames and `parity.render` into
Markdown and HTML. JSON round-trips with `ParityReport.model_validate_json`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import pandas as pd


class Verdict(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"


class Check(StrEnum):
    ARTIFACTS = "artifacts"
    NODE_COUNTS = "node_counts"
    NODE_SETS = "node_sets"
    STATUSES = "statuses"
    ROW_COUNTS = "row_counts"
    VALUES = "values"
    SCHEMA = "schema"
    TIMINGS = "timings"


class Severity(StrEnum):
    """`error` fails the job; `explained` is a difference with a known, accepted cause; `info` never gates."""

    ERROR = "error"
    EXPLAINED = "explained"
    INFO = "info"


class Reason(StrEnum):
    """Reason codes of findings. Stable strings: settings' `accepted` entries refer to them."""

    NODE_COUNT_DIFFERS = "node_count_differs"
    TARGET_DEPENDENT_CONFIG = "target_dependent_config"
    ENV_VAR_DEPENDENT_CONFIG = "env_var_dependent_config"
    DISABLED_IN_CANDIDATE = "disabled_in_candidate"
    DISABLED_IN_BASELINE = "disabled_in_baseline"
    NOT_IN_CANDIDATE_PROJECT = "not_in_candidate_project"
    NOT_IN_BASELINE_PROJECT = "not_in_baseline_project"
    SELECTION_DIFFERS = "selection_differs"
    NOT_EXECUTED_IN_BASELINE = "not_executed_in_baseline"
    NOT_EXECUTED_IN_CANDIDATE = "not_executed_in_candidate"
    SELECTED_NOT_EXECUTED = "selected_not_executed"
    EXECUTED_NOT_SELECTED = "executed_not_selected"
    SELECTION_NOT_RESOLVED = "selection_not_resolved"
    STATUS_CHANGED = "status_changed"
    STATUS_IMPROVED = "status_improved"
    SKIPPED_AFTER_UPSTREAM_FAILURE = "skipped_after_upstream_failure"
    ROW_COUNT_DIFFERS = "row_count_differs"
    ROW_COUNT_WITHIN_TOLERANCE = "row_count_within_tolerance"
    RELATION_MISSING_IN_BASELINE = "relation_missing_in_baseline"
    RELATION_MISSING_IN_CANDIDATE = "relation_missing_in_candidate"
    VALUES_DIFFER = "values_differ"
    COLUMNS_EXCLUDED = "columns_excluded"
    COLUMN_NOT_HASHABLE = "column_not_hashable"
    NONDETERMINISTIC = "nondeterministic"
    FLOAT_PRECISION = "float_precision"
    VALUES_DISABLED = "values_disabled"
    VALUES_SKIPPED_RELATION_MISSING = "values_skipped_relation_missing"
    VALUES_SKIPPED_ROW_COUNTS_DIFFER = "values_skipped_row_counts_differ"
    VALUES_SKIPPED_NO_COLUMNS = "values_skipped_no_columns"
    VALUES_SKIPPED_ENGINES_DIFFER = "values_skipped_engines_differ"
    VALUES_CHECKED_THROUGH_CHILDREN = "values_checked_through_children"
    VALUES_NOT_DRILLED = "values_not_drilled"
    CANDIDATE_WRONG_TARGET = "candidate_wrong_target"
    CANDIDATE_WRONG_CONNECTION = "candidate_wrong_connection"
    CANDIDATE_DATA_STALE = "candidate_data_stale"
    BASELINE_MOVED = "baseline_moved"
    REWRITTEN_BY_SAME_JOB = "rewritten_by_same_job"
    CANDIDATE_PARAMETERS_DIFFER = "candidate_parameters_differ"
    COLUMN_ADDED = "column_added"
    COLUMN_REMOVED = "column_removed"
    COLUMN_TYPE_CHANGED = "column_type_changed"
    SLOWER_THAN_BASELINE = "slower_than_baseline"
    STEP_COMMAND_DIFFERS = "step_command_differs"


NEVER_ACCEPTED = frozenset(
    {
        Reason.CANDIDATE_WRONG_TARGET,
        Reason.CANDIDATE_WRONG_CONNECTION,
        Reason.CANDIDATE_DATA_STALE,
        Reason.BASELINE_MOVED,
        Reason.CANDIDATE_PARAMETERS_DIFFER,
        Reason.STEP_COMMAND_DIFFERS,
        Reason.SELECTION_NOT_RESOLVED,
    }
)
"""Reasons that say the comparison itself is invalid (wrong or stale data, wrong run): fixed, never accepted."""


class Finding(BaseModel):
    """One difference (or noteworthy fact) with its reason code and, when known, its cause."""

    model_config = ConfigDict(frozen=True)

    check: Check
    reason: str
    severity: Severity
    subject: str
    message: str
    explanation: str | None = None


class RunRef(BaseModel):
    """Which run a side of the comparison came from."""

    model_config = ConfigDict(frozen=True)

    system: Literal["dbt_cloud", "prefect", "files"]
    run_id: str
    step: int | None = None
    command: str | None = None
    target: str | None = None
    generated_at: str | None = None
    dbt_version: str | None = None
    location: str | None = None
    """Where the run's artifacts are kept (a folder or fsspec URL holding manifest.json), for readers of the report."""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    read_as_of: datetime | None = None
    """Set when the run's tables were read as of its end (Snowflake Time Travel), not as they are now."""


class NodeCountRow(BaseModel):
    model_config = ConfigDict(frozen=True)

    resource_type: str
    baseline: int
    candidate: int
    delta: int
    baseline_disabled: int = 0
    candidate_disabled: int = 0


class NodeSetRow(BaseModel):
    """A node executed on one side and not on the other (`missing` = only baseline, `extra` = only candidate)."""

    model_config = ConfigDict(frozen=True)

    unique_id: str
    resource_type: str
    difference: Literal["missing", "extra"]
    compared: Literal["baseline_vs_selection", "baseline_vs_run", "selection_vs_run"]
    reason: str
    explanation: str | None = None


class StatusRow(BaseModel):
    model_config = ConfigDict(frozen=True)

    unique_id: str
    resource_type: str
    baseline_status: str
    candidate_status: str
    reason: str
    explanation: str | None = None


class RowCountStatus(StrEnum):
    EQUAL = "equal"
    WITHIN_TOLERANCE = "within_tolerance"
    DIFFERENT = "different"
    MISSING_IN_BASELINE = "missing_in_baseline"
    MISSING_IN_CANDIDATE = "missing_in_candidate"


class RowCountRow(BaseModel):
    model_config = ConfigDict(frozen=True)

    unique_id: str
    materialized: str | None
    baseline_relation: str
    candidate_relation: str
    baseline_rows: int | None
    candidate_rows: int | None
    delta: int | None
    relative_delta: float | None
    tolerance_abs: int
    tolerance_rel: float
    tolerance_source: str
    status: RowCountStatus


class ValueStatus(StrEnum):
    EQUAL = "equal"
    DIFFERENT = "different"
    SKIPPED = "skipped"


class ValueSample(BaseModel):
    """One differing key: its values, and values on each side (as text, truncated).

    A `changed` sample belongs to one `column` and holds that column's two values, which always differ; a key
    found on one side only holds that side's values of the shown columns.
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["changed", "only_in_baseline", "only_in_candidate"]
    key: dict[str, str | None]
    baseline: dict[str, str | None] = Field(default_factory=dict)
    candidate: dict[str, str | None] = Field(default_factory=dict)
    column: str | None = None


class ColumnDiff(BaseModel):
    """One differing column of a relation: how many keys' values differ in it, and by how much at most."""

    model_config = ConfigDict(frozen=True)

    column: str
    unequal_rows: int = Field(description="Keys on both sides whose value in this column differs.")
    complete: bool = Field(
        default=True, description="False when counted over the first differing key buckets only (a lower bound)."
    )
    max_abs_diff: float | None = Field(default=None, description="Largest |baseline - candidate| (numbers only).")


class ValueRow(BaseModel):
    """Value parity of one relation pair: fingerprints, and where they differ, columns and sample keys."""

    model_config = ConfigDict(frozen=True)

    unique_id: str
    materialized: str | None
    status: ValueStatus
    reason: str | None = None
    columns_compared: int = 0
    excluded_columns: list[str] = Field(default_factory=list, description="'column (source)' entries.")
    float_columns: list[str] = Field(default_factory=list)
    float_decimals: int | None = None
    baseline_fingerprint: str | None = None
    candidate_fingerprint: str | None = None
    differing_columns: list[str] = Field(default_factory=list)
    key: list[str] = Field(default_factory=list)
    key_source: str | None = None
    samples: list[ValueSample] = Field(default_factory=list)
    column_diffs: list[ColumnDiff] = Field(default_factory=list)
    rows_changed: int | None = Field(default=None, description="Keys on both sides whose rows differ.")
    rows_only_in_baseline: int | None = None
    rows_only_in_candidate: int | None = None
    note: str | None = None
    moved_columns: list[str] = Field(
        default_factory=list,
        description="No single column differs: the columns whose values go to different rows (see parity.noise).",
    )


class SchemaRow(BaseModel):
    model_config = ConfigDict(frozen=True)

    unique_id: str
    column: str
    baseline_type: str | None
    candidate_type: str | None
    status: Literal["added", "removed", "type_changed"]
    source: Literal["catalog", "information_schema"]


class TimingRow(BaseModel):
    model_config = ConfigDict(frozen=True)

    unique_id: str
    baseline_seconds: float
    candidate_seconds: float
    ratio: float | None


class TimingSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    baseline_seconds: float
    candidate_seconds: float
    ratio: float | None
    nodes_compared: int


class NoiseEntry(BaseModel):
    """One relation's noise seen between two runs of the same code (see `parity.noise.calibrate`)."""

    model_config = ConfigDict(frozen=True)

    unique_id: str
    name: str
    kind: Literal["columns", "row_pairing", "rows", "row_count"]
    columns: list[str] = Field(default_factory=list)
    evidence: str
    sql: list[str] = Field(default_factory=list, description="Expressions of the compiled SQL that cause it.")
    setting: str = Field(description="The parity settings line that leaves this noise out of later comparisons.")
    section: str = Field(description="The TOML table the line goes under.")


class Calibration(BaseModel):
    """What an A/A pair (two runs of the same code) showed, and the settings lines it proposes."""

    model_config = ConfigDict(frozen=True)

    first_run: str
    second_run: str
    entries: list[NoiseEntry] = Field(default_factory=list)

    def settings_lines(self) -> str:
        """The proposed lines under their TOML tables, ready to paste into `<tenant>.parity.toml`."""
        sections: dict[str, list[str]] = {}
        for entry in self.entries:
            sections.setdefault(entry.section, []).append(entry.setting)
        blocks = []
        for section, lines in sorted(sections.items(), key=lambda item: (item[0] != "parity", item[0])):
            if section == "parity":  # one `accepted` array
                lines = [f"accepted = [{', '.join(lines)}]  # merge with the entries already there"]
            blocks.append("\n".join([f"[{section}]", *lines]))
        return "\n\n".join(blocks)


class JobParity(BaseModel):
    """The comparison of one dbt Cloud job's baseline run with its Prefect candidate run."""

    job_id: int
    job_name: str = ""
    verdict: Verdict
    baseline: RunRef
    candidate: RunRef
    node_counts: list[NodeCountRow] = Field(default_factory=list)
    node_sets: list[NodeSetRow] = Field(default_factory=list)
    nodes_matched: int = 0
    statuses: list[StatusRow] = Field(default_factory=list)
    statuses_matched: int = 0
    row_counts: list[RowCountRow] = Field(default_factory=list)
    value_checks: list[ValueRow] = Field(default_factory=list)
    schema_diffs: list[SchemaRow] = Field(default_factory=list)
    schema_relations_compared: int = 0
    timing_summary: TimingSummary | None = None
    timings: list[TimingRow] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    queries_issued: dict[str, int] = Field(
        default_factory=dict, description="Warehouse queries per side for row counts, schema and fingerprints."
    )
    drill_down_queries: dict[str, int] = Field(
        default_factory=dict, description="Warehouse queries per side spent naming differing columns and keys."
    )
    calibration: Calibration | None = Field(
        default=None, description="Set when both sides are runs of the same code (an A/A pair): the build noise."
    )

    def errors(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.severity is Severity.ERROR]


class ParityReport(BaseModel):
    """Parity of every compared job; the overall verdict is PASS only when every job passes."""

    tenant: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    verdict: Verdict
    jobs: list[JobParity] = Field(default_factory=list)

    @classmethod
    def from_jobs(cls, tenant: str, jobs: list[JobParity]) -> ParityReport:
        """Overall verdict: FAIL when any job fails or when there is no job to compare."""
        passed = bool(jobs) and all(job.verdict is Verdict.PASS for job in jobs)
        return cls(tenant=tenant, verdict=Verdict.PASS if passed else Verdict.FAIL, jobs=jobs)

    def job(self, job_id: int) -> JobParity:
        for job in self.jobs:
            if job.job_id == job_id:
                return job
        raise KeyError(job_id)

    def to_frames(self) -> dict[str, pd.DataFrame]:
        """pandas DataFrames per check, one row per job and item (see `parity.frames.report_frames`)."""
        from parity.frames import report_frames  # pandas loads only when frames are asked for

        return report_frames(self)
