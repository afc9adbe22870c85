select
    date_day,
    cast({{ dbt.date_trunc('week', 'date_day') }} as date) as week_start,
    cast({{ dbt.date_trunc('month', 'date_day') }} as date) as month_start,
    cast({{ dbt.date_trunc('quarter', 'date_day') }} as date) as quarter_start,
    extract(year from date_day) as calendar_year,
    extract(month from date_day) as calendar_month,
    {#- William Grant & Sons' financial year runs January to December. -#}
    extract(year from date_day) as fiscal_year
from {{ ref('int_date_spine') }}
