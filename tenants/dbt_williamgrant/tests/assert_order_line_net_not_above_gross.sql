-- Discounts never turn an order line's net amount above its gross amount.
select order_line_id, gross_amount, net_amount
from {{ ref('int_order_lines_enriched') }}
where net_amount > gross_amount + 0.01
