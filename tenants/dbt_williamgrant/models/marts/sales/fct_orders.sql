select
    order_id,
    order_number,
    order_date,
    requested_delivery_date,
    distributor_id,
    sales_rep_id,
    currency_code,
    order_status,
    is_cancelled,
    line_count,
    total_cases,
    total_nine_litre_cases,
    gross_amount_gbp,
    discount_amount_gbp,
    net_amount_gbp
from {{ ref('int_orders_summary') }}
