-- Every invoice equals the net value of its order's lines (order currency, within rounding).
with order_totals as (
    select order_id, sum(net_amount) as net_amount
    from {{ ref('int_order_lines_enriched') }}
    group by order_id
)

select i.invoice_id, i.invoice_amount, o.net_amount
from {{ ref('stg_finance__invoices') }} as i
inner join order_totals as o on i.order_id = o.order_id
where abs(i.invoice_amount - o.net_amount) > 0.05
