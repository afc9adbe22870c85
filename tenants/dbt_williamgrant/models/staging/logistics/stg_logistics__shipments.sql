select
    cast(shipment_id as bigint) as shipment_id,
    cast(order_id as bigint) as order_id,
    cast(warehouse_id as integer) as warehouse_id,
    carrier,
    cast(cases_shipped as integer) as cases_shipped,
    shipped_at,
    delivered_at,
    cast(shipped_at as date) as shipped_date,
    cast(delivered_at as date) as delivered_date,
    lower(status) as shipment_status,
    cast(freight_cost_gbp as {{ dbt.type_numeric() }}) as freight_cost_gbp,
    loaded_at
from {{ source('logistics', 'shipments') }}
