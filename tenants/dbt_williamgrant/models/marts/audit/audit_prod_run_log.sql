{#-
    Production-only run log: enabled only when target.name == 'prod'. A run against any other
    target (dev, parity, local) therefore has one node fewer than a prod run.
-#}
{{
    config(
        enabled=(target.name == 'prod'),
        materialized='incremental',
        incremental_strategy='append'
    )
}}

select
    cast('{{ invocation_id }}' as {{ dbt.type_string() }}) as invocation_id,
    cast('{{ target.name }}' as {{ dbt.type_string() }}) as target_name,
    cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S") }}' as {{ dbt.type_timestamp() }}) as run_started_at,
    (select count(*) from {{ ref('fct_orders') }}) as fct_orders_rows,
    (select count(*) from {{ ref('fct_depletions') }}) as fct_depletions_rows
