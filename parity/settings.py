"""Tenant-level parity settings: row-count tolerances, timing gate, accepted differences.

Read from `tenants/<tenant>.parity.toml` (next to the tenant settings file). Every field has a default,
so a tenant without the file gets exact row counts and an informational timing check.
"""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from parity.errors import ParitySettingsError


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
    row_counts: RowCountSettings = RowCountSettings()
    timings: TimingSettings = TimingSettings()
    check_schema: bool = True
    accepted: tuple[str, ...] = Field(
        default=(),
        description="Reviewed differences that do not fail parity, as '<reason>:<unique_id glob>' (job-wide).",
    )

    def is_accepted(self, reason: str, subject: str) -> bool:
        """True when a person has accepted this reason for this subject (glob on the subject)."""
        for entry in self.accepted:
            accepted_reason, _, pattern = entry.partition(":")
            if accepted_reason == reason and fnmatch.fnmatchcase(subject, pattern or "*"):
                return True
        return False


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
