from dbt2prefect.cli.app import main

main()
