"""Events a `run_dbt_wg` run emits beyond Prefect's own state events."""

RUN_WARNED_EVENT = "dbt2prefect.run.warned"
"""A run whose dbt steps succeeded with at least one node warning (dbt Cloud's "succeeded with warnings")."""
