"""Errors of the parity package. Each names the input that was wrong and how to fix it."""

from __future__ import annotations

from dbt2prefect.errors import Dbt2PrefectError


class ParityError(Dbt2PrefectError):
    """Base class of parity errors (bad input unless a subclass says otherwise)."""


class ArtifactError(ParityError):
    """A dbt artifact file is missing, truncated, not JSON, or of an unsupported schema version."""


class ParitySettingsError(ParityError):
    """The tenant's parity settings are invalid."""


class SelectionError(ParityError):
    """A job's selection could not be resolved on the candidate project (dbt parse or ls failed)."""


class WarehouseQueryError(ParityError):
    """A warehouse query for row counts or columns failed."""

    exit_code = 3


class BaselineError(ParityError):
    """No usable dbt Cloud baseline run was found for a job."""


class CandidateError(ParityError):
    """The candidate Prefect run is missing or unusable."""
