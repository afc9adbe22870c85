{#- Estimated distributor stock: cases shipped in minus cases depleted out, over the history. -#}
with shipped as (
    select o.distributor_id, l.product_id, sum(l.quantity_cases) as cases_in
    from {{ ref('fct_order_lines') }} as l
    inner join {{ ref('fct_orders') }} as o on l.order_id = o.order_id
    where o.order_status in ('shipped', 'delivered')
    group by o.distributor_id, l.product_id
),

depleted as (
    select distributor_id, product_id, sum(cases_depleted) as cases_out
    from {{ ref('fct_depletions') }}
    group by distributor_id, product_id
)

select
    {{ wg_surrogate_key(['coalesce(s.distributor_id, d.distributor_id)', 'coalesce(s.product_id, d.product_id)']) }}
        as stock_key,
    coalesce(s.distributor_id, d.distributor_id) as distributor_id,
    coalesce(s.product_id, d.product_id) as product_id,
    coalesce(s.cases_in, 0) as cases_in,
    coalesce(d.cases_out, 0) as cases_out,
    coalesce(s.cases_in, 0) - coalesce(d.cases_out, 0) as estimated_stock_cases
from shipped as s
full outer join depleted as d
    on s.distributor_id = d.distributor_id
    and s.product_id = d.product_id
