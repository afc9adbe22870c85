"""dbt2prefect: move a dbt project from dbt Cloud to dbt Core on Prefect, prove parity, cut over safely."""

__version__ = "0.1.0"
