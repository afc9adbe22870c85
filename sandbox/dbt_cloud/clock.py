"""Timestamps and durations in the API's formats."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def run_timestamp(moment: datetime | None) -> str | None:
    """Run timestamps use a space between date and time, as the real API's do."""
    return str(moment) if moment is not None else None


def hms(seconds: float) -> str:
    """Durations as "HH:MM:SS" (hours may exceed 24)."""
    total = round(seconds)
    return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"
