{{ config(tags=['finance']) }}

select
    cast({{ dbt.date_trunc('month', 'l.order_date') }} as date) as sales_month,
    l.brand_id,
    d.region_code,
    d.channel_code,
    sum(l.quantity_cases) as cases,
    sum(l.nine_litre_cases) as nine_litre_cases,
    sum(l.gross_amount_gbp) as gross_amount_gbp,
    sum(l.net_amount_gbp) as net_amount_gbp
from {{ ref('int_order_lines_gbp') }} as l
inner join {{ ref('int_distributors_enriched') }} as d on l.distributor_id = d.distributor_id
where not l.is_cancelled
group by 1, 2, 3, 4
