"""Tenant-level parity settings: row-count tolerances, value comparison, timing gate, accepted differences.

Read from `tenants/<tenant>.parity.toml` (next to the tenant settings file). Every field has a default,
so a tenant without the file gets exact row counts and an informational timing check.
"""

from __future__ import annotations

import fnmatch
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dbt2prefect.params import RunParameters
from parity.errors import ParitySettingsError
from parity.model import NEVER_ACCEPTED, Reason


class Tolerance(BaseModel):
    """A row-count difference is tolerated when |delta| <= abs OR |delta| / baseline <= rel."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    abs: int = Field(default=0, ge=0, description="Allowed absolute difference in rows.")
    rel: float = Field(default=0.0, ge=0.0, description="Allowed relative difference (0.01 = 1 %).")

    def allows(self, baseline: int, candidate: int) -> bool:
        delta = abs(candidate - baseline)
        if delta <= self.abs:
            return True
        return baseline > 0 and delta / baseline <= self.rel

    def loosest(self, other: Tolerance) -> Tolerance:
        return Tolerance(abs=max(self.abs, other.abs), rel=max(self.rel, other.rel))


class RowCountSettings(BaseModel):
    """Tolerances: per model (name or unique_id) first, else the loosest of the node's tags, else default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default: Tolerance = Tolerance()
    models: dict[str, Tolerance] = Field(default_factory=dict)
    tags: dict[str, Tolerance] = Field(default_factory=dict)

    def tolerance_for(self, unique_id: str, name: str, tags: frozenset[str]) -> tuple[Tolerance, str]:
        """The tolerance of one node and where it came from ('model:x', 'tag:y' or 'default')."""
        for key in (unique_id, name):
            if key in self.models:
                return self.models[key], f"model:{key}"
        matched = sorted(tag for tag in tags if tag in self.tags)
        if matched:
            result = self.tags[matched[0]]
            for tag in matched[1:]:
                result = result.loosest(self.tags[tag])
            return result, "tag:" + ",".join(matched)
        return self.default, "default"


def _matches(name: str, unique_id: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(unique_id, pattern)


NONDETERMINISTIC_SOURCE = "nondeterministic:"
"""Source prefix of an exclusion that comes from `[parity.values.nondeterministic]`."""


class ValueSettings(BaseModel):
    """Value parity: in-warehouse fingerprints per relation, drill-down to columns and keys where they differ.

    Column exclusions are lower-case column globs, keyed by model (a glob on the name or unique_id) or by tag;
    the columns of a relation that match any entry that applies to it are left out of every hash.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    float_decimals: int = Field(
        default=6, ge=0, le=15, description="Float columns are rounded to this many decimal places before hashing."
    )
    exclude_columns: list[str] = Field(default_factory=list, description="Column globs excluded everywhere.")
    exclude_by_model: dict[str, list[str]] = Field(default_factory=dict)
    exclude_by_tag: dict[str, list[str]] = Field(default_factory=dict)
    keys: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Model (name or unique_id glob) -> key columns; default: a column with a `unique` test.",
    )
    nondeterministic: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Model (name or unique_id glob) -> column globs that differ between two runs of the same code "
        "(see `dbt2prefect parity --calibrate`): left out of every hash, reported as nondeterministic.",
    )
    sample_rows: int = Field(default=5, ge=0, le=100, description="Differing keys shown per relation.")
    sample_bytes: int = Field(default=8000, ge=0, description="Cap on the sample's size per relation.")
    max_drill_down: int = Field(default=20, ge=0, description="Differing relations drilled into per job.")

    @field_validator("keys")
    @classmethod
    def _keys_not_empty(cls, keys: dict[str, list[str]]) -> dict[str, list[str]]:
        empty = sorted(pattern for pattern, columns in keys.items() if not columns)
        if empty:
            raise ValueError(f"key of {', '.join(empty)} lists no column; name the key columns or remove the entry")
        return keys

    def exclusions_for(self, unique_id: str, name: str, tags: frozenset[str]) -> list[tuple[str, str]]:
        """(column glob, where it came from: 'default', 'model:<glob>', 'tag:<tag>' or 'nondeterministic:<glob>')."""
        result = [(glob.lower(), "default") for glob in self.exclude_columns]
        for pattern, globs in sorted(self.exclude_by_model.items()):
            if _matches(name, unique_id, pattern):
                result += [(glob.lower(), f"model:{pattern}") for glob in globs]
        for tag, globs in sorted(self.exclude_by_tag.items()):
            if any(fnmatch.fnmatchcase(t, tag) for t in tags):
                result += [(glob.lower(), f"tag:{tag}") for glob in globs]
        for pattern, globs in sorted(self.nondeterministic.items()):
            if _matches(name, unique_id, pattern):
                result += [(glob.lower(), f"{NONDETERMINISTIC_SOURCE}{pattern}") for glob in globs]
        return result

    def key_for(self, unique_id: str, name: str) -> tuple[list[str], str] | None:
        """The configured key columns of one node and their source, None when none is configured."""
        for pattern, columns in sorted(self.keys.items()):
            if _matches(name, unique_id, pattern):
                return [c.lower() for c in columns], f"settings:{pattern}"
        return None


class TimingSettings(BaseModel):
    """Timings are informational unless `gate` is true."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gate: bool = False
    max_total_ratio: float = Field(default=3.0, gt=0)
    min_seconds: float = Field(default=1.0, ge=0, description="Nodes faster than this on both sides are not flagged.")


class ParitySettings(BaseModel):
    """Everything a tenant can tune about parity."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    candidate_target: str = "parity"
    calibration_target: str = Field(
        default="parity_calibration",
        description="Second target of a calibration (`parity --calibrate`): the job runs on the parity target and "
        "on this one, from the same code, and the two are compared to learn the build noise.",
    )
    row_counts: RowCountSettings = RowCountSettings()
    values: ValueSettings = ValueSettings()
    timings: TimingSettings = TimingSettings()
    check_schema: bool = True
    statement_timeout_seconds: int = Field(
        default=3600,
        ge=1,
        description="Any parity statement running longer is cancelled (Snowflake: STATEMENT_TIMEOUT_IN_SECONDS).",
    )
    accepted: tuple[str, ...] = Field(
        default=(),
        description="Reviewed differences that do not fail parity, as '<reason>:<unique_id glob>' (job-wide).",
    )

    @field_validator("accepted")
    @classmethod
    def _accepted_entries(cls, entries: tuple[str, ...]) -> tuple[str, ...]:
        # An entry that accepted more than its writer meant would let a real difference pass: refuse it.
        known = sorted(reason.value for reason in Reason)
        for entry in entries:
            reason, colon, pattern = entry.partition(":")
            if reason not in known:
                raise ValueError(f"{entry!r}: unknown reason {reason!r}; reasons are {', '.join(known)}")
            if reason in NEVER_ACCEPTED:
                raise ValueError(
                    f"{entry!r}: {reason} says parity compared the wrong data or run; it cannot be accepted, "
                    "fix it as the report says"
                )
            if not colon or not pattern.strip():
                raise ValueError(
                    f"{entry!r} names no subjects; write '{reason}:<unique_id glob>', or '{reason}:*' to accept it "
                    "for every node of the job"
                )
        return entries

    @model_validator(mode="after")
    def _calibration_target_differs(self) -> ParitySettings:
        if self.calibration_target == self.candidate_target:
            raise ValueError(
                f"calibration_target {self.calibration_target!r} is the candidate_target: a calibration compares "
                "two runs on two targets; name a target writing a database or schema of its own"
            )
        return self

    def is_accepted(self, reason: str, subject: str) -> bool:
        """True when a person has accepted this reason for this subject (glob on the subject)."""
        for entry in self.accepted:
            accepted_reason, _, pattern = entry.partition(":")
            if accepted_reason == reason and fnmatch.fnmatchcase(subject, pattern):
                return True
        return False


def production_targets(
    environments: Mapping[str, str], jobs: Iterable[tuple[int, RunParameters | Mapping[str, Any]]] = ()
) -> dict[str, str]:
    """Targets and connections that production runs use -> why each is production.

    Args:
        environments: the tenant's `[tenant.dbt_cloud_environments]` (dbt Cloud environment -> target).
        jobs: (job id, translated `run_dbt_wg` parameters) of the migrated jobs: their target and connection.
    """
    why: dict[str, list[str]] = {}
    for environment, target in sorted(environments.items()):
        why.setdefault(target, []).append(f"dbt Cloud environment {environment} runs on it")
    for job_id, parameters in jobs:
        values = parameters.to_api() if isinstance(parameters, RunParameters) else parameters
        for name in ("connection", "target"):
            value = values.get(name)
            if isinstance(value, str) and value:
                why.setdefault(value, []).append(f"job {job_id}'s {name}")
    return {target: "; ".join(dict.fromkeys(reasons)) for target, reasons in why.items()}


def refuse_production_candidate(
    settings: ParitySettings, production: Mapping[str, str], source: Path | str | None = None
) -> None:
    """The candidate rebuilds its target: refuse a candidate target that production runs use.

    Raises:
        ParitySettingsError: `candidate_target` is one of `production` (see `production_targets`).
    """
    target = settings.candidate_target
    if target in production:
        where = f" in {source}" if source else ""
        raise ParitySettingsError(
            f"[parity] candidate_target = {target!r}{where} is a production target ({production[target]}): "
            "a candidate run would rebuild it and parity would compare production with itself; set "
            'candidate_target to a target of its own (e.g. "parity", with its own profile block and database)'
        )


def parity_settings_path(tenant_settings_file: Path) -> Path:
    """`tenants/x.toml` -> `tenants/x.parity.toml`."""
    return tenant_settings_file.with_name(f"{tenant_settings_file.stem}.parity.toml")


def load_parity_settings(path: Path | None) -> ParitySettings:
    """Read parity settings; defaults when `path` is None or does not exist.

    Raises:
        ParitySettingsError: the file is not TOML or a field is invalid (the message names it).
    """
    if path is None or not path.exists():
        return ParitySettings()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ParitySettingsError(f"parity settings {path} are not valid TOML: {exc}") from None
    except OSError as exc:  # a folder or an unreadable file
        raise ParitySettingsError(
            f"parity settings {path} cannot be read ({exc.strerror or exc}); use a TOML file"
        ) from None
    section = raw.get("parity", raw)
    try:
        return ParitySettings.model_validate(section)
    except ValidationError as exc:
        problems = "; ".join(
            f"parity.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
        )
        raise ParitySettingsError(f"parity settings {path}: {problems}") from None
