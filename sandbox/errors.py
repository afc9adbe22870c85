"""Errors of the sandbox stack and demo. Each says what failed and how to fix it."""

from __future__ import annotations

from dbt2prefect.errors import Dbt2PrefectError


class SandboxError(Dbt2PrefectError):
    """Base class of the sandbox stack's errors (bad input unless a subclass says otherwise)."""


class WorkdirError(SandboxError):
    """The sandbox work folder cannot be used (not ours, not writable)."""


class PortInUseError(SandboxError):
    """A requested loopback port is already taken."""


class ServerStartError(SandboxError):
    """A sandbox server did not start or did not become healthy in time."""

    exit_code = 3
