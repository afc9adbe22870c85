select
    c.customer_id,
    c.customer_name,
    c.country,
    count(o.order_id) as order_count,
    coalesce(sum(case when o.status = 'completed' then o.amount end), 0) as completed_amount
from {{ ref('stg_customers') }} as c
left join {{ ref('stg_orders') }} as o on o.customer_id = c.customer_id
group by 1, 2, 3
