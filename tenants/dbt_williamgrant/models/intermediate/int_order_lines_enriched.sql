{#- Materialisation depends on the target: cheap views while developing, tables where it matters. -#}
{{ config(materialized=('table' if target.name in ('prod', 'parity') else 'view')) }}

select
    l.order_line_id,
    l.order_id,
    l.line_number,
    o.order_date,
    o.distributor_id,
    o.sales_rep_id,
    o.currency_code,
    o.order_status,
    o.is_cancelled,
    l.product_id,
    p.brand_id,
    l.quantity_cases,
    {{ nine_litre_cases('l.quantity_cases', 'p.bottles_per_case', 'p.bottle_size_ml') }} as nine_litre_cases,
    l.unit_price,
    l.discount_pct,
    {{ money('l.quantity_cases * l.unit_price') }} as gross_amount,
    {{ money('l.quantity_cases * l.unit_price * l.discount_pct / 100') }} as discount_amount,
    {{ money('l.quantity_cases * l.unit_price * (1 - l.discount_pct / 100)') }} as net_amount
from {{ ref('stg_erp__order_lines') }} as l
inner join {{ ref('stg_erp__orders') }} as o on l.order_id = o.order_id
inner join {{ ref('stg_erp__products') }} as p on l.product_id = p.product_id
