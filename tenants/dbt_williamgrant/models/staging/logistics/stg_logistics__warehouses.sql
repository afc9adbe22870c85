select
    cast(warehouse_id as integer) as warehouse_id,
    upper(warehouse_code) as warehouse_code,
    warehouse_name,
    upper(country_code) as country_code,
    cast(capacity_cases as integer) as capacity_cases,
    loaded_at
from {{ source('logistics', 'warehouses') }}
