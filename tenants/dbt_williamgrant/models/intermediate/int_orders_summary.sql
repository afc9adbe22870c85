select
    o.order_id,
    o.order_number,
    o.order_date,
    o.requested_delivery_date,
    o.distributor_id,
    o.sales_rep_id,
    o.currency_code,
    o.order_status,
    o.is_cancelled,
    count(l.order_line_id) as line_count,
    coalesce(sum(l.quantity_cases), 0) as total_cases,
    coalesce(sum(l.nine_litre_cases), 0) as total_nine_litre_cases,
    coalesce(sum(l.gross_amount_gbp), 0) as gross_amount_gbp,
    coalesce(sum(l.discount_amount_gbp), 0) as discount_amount_gbp,
    coalesce(sum(l.net_amount_gbp), 0) as net_amount_gbp
from {{ ref('stg_erp__orders') }} as o
left join {{ ref('int_order_lines_gbp') }} as l on o.order_id = l.order_id
group by
    o.order_id, o.order_number, o.order_date, o.requested_delivery_date, o.distributor_id,
    o.sales_rep_id, o.currency_code, o.order_status, o.is_cancelled
