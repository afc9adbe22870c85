select
    cast({{ dbt.date_trunc('month', 'shipped_date') }} as date) as shipped_month,
    warehouse_code,
    carrier,
    count(*) as shipments,
    sum(case when is_on_time then 1 else 0 end) as on_time_shipments,
    avg(days_to_ship) as avg_days_to_ship,
    avg(order_to_delivery_days) as avg_order_to_delivery_days,
    sum(freight_cost_gbp) as freight_cost_gbp
from {{ ref('fct_shipments') }}
group by cast({{ dbt.date_trunc('month', 'shipped_date') }} as date), warehouse_code, carrier
