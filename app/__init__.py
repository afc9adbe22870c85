"""The application layer: one `Workspace` per tenant builds the services and runs the use cases.

It is the only place that builds the dbt Cloud client, the cutover ledger, the run-artifact store, the parity
report root and the Prefect access; the CLI, the flows, the demo and the notebooks call it. It imports the core
(`dbt2prefect`), `migration` and `parity`, never the packages above it (`flows`, `sandbox`, `cli`).
"""
