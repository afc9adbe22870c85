"""The `dbt2prefect` command line: parses, calls the library, renders. No business logic here."""
