"""Errors of the migration package. Each names its input and how to fix it."""

from __future__ import annotations

from dbt2prefect.errors import Dbt2PrefectError


class MigrationError(Dbt2PrefectError):
    """Base class of the migration package's errors (bad input or configuration: exit code 2)."""


class InventoryError(MigrationError):
    """An inventory file is missing, unreadable or in neither accepted shape."""


class ApplyError(MigrationError):
    """The plan cannot be applied as asked (e.g. the work pool is missing); the message says how to fix it."""


class LedgerError(MigrationError):
    """The cutover ledger cannot be read or written (a record is unreadable, the store refuses a write)."""

    exit_code = 3


class LedgerSettingError(LedgerError):
    """The ledger cannot be used as configured (unusable or non-durable URL, unsafe tenant name, records of a
    newer toolkit): exit 2."""

    exit_code = 2


class LedgerDamagedError(LedgerError):
    """A ledger record was edited or damaged after it was written: restore the ledger from backup (exit code 2)."""

    exit_code = 2


class CutoverRefusedError(MigrationError):
    """Cutover or rollback will not start: a job lacks a PASS parity verdict, an applied schedule, or a ledger."""

    exit_code = 1


class CutoverRequestError(CutoverRefusedError):
    """The cutover or rollback request itself is bad input (a job id nobody knows, --force without --reason): exit 2."""

    exit_code = 2


class CutoverVerificationError(MigrationError):
    """A cutover or rollback ran, but reading both sides back did not show the expected state."""

    exit_code = 1


class WebhookRefusedError(MigrationError):
    """A dbt Cloud webhook event is not trusted: no signature, a signature that does not match, or a body that is
    not a `job.run.completed` of dbt Cloud's shape. `reason` is `missing-signature`, `bad-signature` or
    `bad-body`."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class ShadowCursorError(MigrationError):
    """The polling cursor in the store is unreadable, or another poller moved it while this one was emitting."""


class RunJobError(MigrationError):
    """`run-job` cannot start the job: no job of that id or name (or several), a job with no Prefect run, an
    unknown target, or no deployment on the Prefect API."""
