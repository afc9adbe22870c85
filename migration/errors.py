"""Errors of the migration package. Each names its input and how to fix it."""

from __future__ import annotations

from dbt2prefect.errors import Dbt2PrefectError


class MigrationError(Dbt2PrefectError):
    """Base class of the migration package's errors (bad input or configuration: exit code 2)."""


class InventoryError(MigrationError):
    """An inventory file is missing, unreadable or in neither accepted shape."""
