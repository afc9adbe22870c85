select
    s.shipment_id,
    s.order_id,
    o.distributor_id,
    o.order_date,
    o.requested_delivery_date,
    s.warehouse_id,
    w.warehouse_code,
    s.carrier,
    s.cases_shipped,
    s.shipped_at,
    s.delivered_at,
    s.shipped_date,
    s.delivered_date,
    s.shipment_status,
    s.freight_cost_gbp,
    {{ dbt.datediff('o.order_date', 's.shipped_date', 'day') }} as days_to_ship,
    case
        when s.delivered_date is not null
            then {{ dbt.datediff('o.order_date', 's.delivered_date', 'day') }}
    end as order_to_delivery_days,
    case
        when s.delivered_date is null then null
        when s.delivered_date <= o.requested_delivery_date then true
        else false
    end as is_on_time
from {{ ref('stg_logistics__shipments') }} as s
inner join {{ ref('stg_erp__orders') }} as o on s.order_id = o.order_id
left join {{ ref('stg_logistics__warehouses') }} as w on s.warehouse_id = w.warehouse_id
