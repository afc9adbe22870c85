"""Errors of the core package. Each says what was wrong and how to fix it."""

from __future__ import annotations

from dbt2prefect.reasons import ReasonCode


class Dbt2PrefectError(Exception):
    """Base class of every error the toolkit raises on purpose."""

    exit_code = 2


class ConfigError(Dbt2PrefectError):
    """Tenant settings or another configuration input is invalid."""


class ParameterError(Dbt2PrefectError):
    """A flow or CLI parameter is invalid."""


class ProfileError(Dbt2PrefectError):
    """A dbt profile could not be built (missing block, bad field)."""


class DbtRunError(Dbt2PrefectError):
    """dbt ran and failed: nodes failed or dbt itself raised."""

    exit_code = 1


class DbtInputError(ParameterError):
    """dbt refused the run's input before running a node (unknown selector, bad project/profile, bad state)."""


class ArtifactStoreError(Dbt2PrefectError):
    """The run-artifact store could not be read or written."""


class ExternalServiceError(Dbt2PrefectError):
    """An external service (dbt Cloud, Prefect API, warehouse) failed after retries."""

    exit_code = 3


class DbtCommandError(ParameterError, ValueError):
    """A dbt command line that dbt's own parser rejects; `reason_code` says why (the message says how to fix it).

    A ValueError too, so parameter validators report it as a bad value.
    """

    def __init__(self, reason_code: ReasonCode, message: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code
