{{ config(tags=['finance']) }}

select
    fx_rate_key,
    rate_date,
    currency_code,
    units_per_gbp,
    cast(1.0 / nullif(units_per_gbp, 0) as {{ dbt.type_numeric() }}) as gbp_per_unit,
    {{ dbt.date_trunc('month', 'rate_date') }} as rate_month
from {{ ref('stg_finance__fx_rates') }}
