select
    {{ wg_surrogate_key(['rate_date', 'currency_code']) }} as fx_rate_key,
    cast(rate_date as date) as rate_date,
    upper(currency_code) as currency_code,
    cast(units_per_gbp as {{ dbt.type_numeric() }}) as units_per_gbp,
    rate_source,
    loaded_at
from {{ source('finance', 'fx_rates') }}
