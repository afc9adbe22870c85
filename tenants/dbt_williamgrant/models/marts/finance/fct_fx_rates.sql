{{ config(tags=['hourly']) }}

select
    fx_rate_key,
    rate_date,
    rate_month,
    currency_code,
    units_per_gbp,
    gbp_per_unit,
    -- Set per dbt Cloud job (project default < environment < job override); the hourly job reports for the UK.
    '{{ env_var("DBT_WG_REGION", "global") }}' as reporting_region
from {{ ref('int_fx_rates_daily') }}
