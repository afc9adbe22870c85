{{ config(tags=['hourly']) }}

select
    fx_rate_key,
    rate_date,
    rate_month,
    currency_code,
    units_per_gbp,
    gbp_per_unit
from {{ ref('int_fx_rates_daily') }}
