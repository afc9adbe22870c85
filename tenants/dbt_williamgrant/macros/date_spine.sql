{#-
    One row per day from start_date (inclusive) to end_date (inclusive), at most 10,000 days.
    Both arguments are SQL expressions evaluating to dates.
-#}
{% macro wg_date_spine(start_date, end_date) -%}
with wg_digits as (
    select 0 as d union all select 1 union all select 2 union all select 3 union all select 4
    union all select 5 union all select 6 union all select 7 union all select 8 union all select 9
),

wg_numbers as (
    select units.d + 10 * tens.d + 100 * hundreds.d + 1000 * thousands.d as day_offset
    from wg_digits as units
    cross join wg_digits as tens
    cross join wg_digits as hundreds
    cross join wg_digits as thousands
),

wg_bounds as (
    select
        cast({{ start_date }} as date) as start_date,
        cast({{ end_date }} as date) as end_date
)

select cast({{ dbt.dateadd('day', 'wg_numbers.day_offset', 'wg_bounds.start_date') }} as date) as date_day
from wg_numbers
cross join wg_bounds
where wg_numbers.day_offset <= {{ dbt.datediff('wg_bounds.start_date', 'wg_bounds.end_date', 'day') }}
{%- endmacro %}
