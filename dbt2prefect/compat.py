"""Guards for the places where dbt2prefect replaces another package's internals.

Each replacement names the package versions it was written for and the names it replaces. On any other version, or
when a name is missing or is no longer the function the replacement was written against, the replacement is not
made: the package's own code runs, and one warning per process says why (the speed-up is lost until the
replacement is checked against that version).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("dbt2prefect.compat")

_reported: set[str] = set()


@dataclass(frozen=True)
class Target:
    """One name in another package that a replacement assigns: `module.name`, expected to hold `original`."""

    module: Any
    name: str
    original: Any = None
    """The object the name must hold for the replacement to apply (None: any object)."""


def _installed_versions() -> dict[str, str]:
    import prefect

    versions = {"prefect": str(prefect.__version__)}
    try:
        import prefect_dbt
    except ImportError:
        return versions
    versions["prefect-dbt"] = str(getattr(prefect_dbt, "__version__", ""))
    return versions


def applies(patch: str, written_for: Mapping[str, str], targets: Callable[[], Sequence[Target]]) -> bool:
    """Whether `patch` may replace its targets here; logs one warning per process when it may not.

    Args:
        patch: the replacement's name, for the log line.
        written_for: distribution name -> version prefix it was written for ("3.9." for any 3.9 release).
        targets: returns the names the replacement assigns; an ImportError counts as a missing name.
    """
    reason = _reason(written_for, targets)
    if reason is None:
        return True
    if patch not in _reported:
        _reported.add(patch)
        logger.warning("%s is not applied (%s): the stock code path runs", patch, reason)
    return False


def _reason(written_for: Mapping[str, str], targets: Callable[[], Sequence[Target]]) -> str | None:
    installed = _installed_versions()
    for distribution, prefix in written_for.items():
        version = installed.get(distribution)
        if version is None or not version.startswith(prefix):
            return f"written for {distribution} {prefix}*, installed {version or 'none'}"
    try:
        found = targets()
    except ImportError as exc:
        return f"cannot import {exc.name or exc}"
    for target in found:
        where = f"{getattr(target.module, '__name__', target.module)}.{target.name}"
        if not hasattr(target.module, target.name):
            return f"{where} is missing"
        if target.original is not None and getattr(target.module, target.name) is not target.original:
            return f"{where} is not the function it was written against"
    return None
