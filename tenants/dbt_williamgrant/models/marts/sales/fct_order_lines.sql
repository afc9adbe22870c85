select
    order_line_id,
    order_id,
    order_date,
    distributor_id,
    product_id,
    brand_id,
    currency_code,
    is_cancelled,
    quantity_cases,
    nine_litre_cases,
    gross_amount_gbp,
    discount_amount_gbp,
    net_amount_gbp
from {{ ref('int_order_lines_gbp') }}
