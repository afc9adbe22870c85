select
    cast(order_line_id as bigint) as order_line_id,
    cast(order_id as bigint) as order_id,
    cast(line_number as integer) as line_number,
    cast(product_id as integer) as product_id,
    cast(quantity_cases as integer) as quantity_cases,
    cast(unit_price as {{ dbt.type_numeric() }}) as unit_price,
    cast(coalesce(discount_pct, 0) as {{ dbt.type_numeric() }}) as discount_pct,
    loaded_at
from {{ source('erp', 'order_lines') }}
