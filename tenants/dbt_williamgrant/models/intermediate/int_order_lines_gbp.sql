{{ config(materialized='table', tags=['finance']) }}

select
    l.order_line_id,
    l.order_id,
    l.order_date,
    l.distributor_id,
    l.product_id,
    l.brand_id,
    l.currency_code,
    l.is_cancelled,
    l.quantity_cases,
    l.nine_litre_cases,
    fx.units_per_gbp,
    {{ to_gbp('l.gross_amount', 'fx.units_per_gbp') }} as gross_amount_gbp,
    {{ to_gbp('l.discount_amount', 'fx.units_per_gbp') }} as discount_amount_gbp,
    {{ to_gbp('l.net_amount', 'fx.units_per_gbp') }} as net_amount_gbp
from {{ ref('int_order_lines_enriched') }} as l
left join {{ ref('int_fx_rates_daily') }} as fx
    on l.currency_code = fx.currency_code
    and l.order_date = fx.rate_date
