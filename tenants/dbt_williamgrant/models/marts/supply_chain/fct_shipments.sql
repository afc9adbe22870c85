select
    shipment_id,
    order_id,
    distributor_id,
    warehouse_id,
    warehouse_code,
    carrier,
    cases_shipped,
    shipped_at,
    delivered_at,
    shipped_date,
    delivered_date,
    shipment_status,
    freight_cost_gbp,
    days_to_ship,
    order_to_delivery_days,
    is_on_time
from {{ ref('int_shipments_enriched') }}
