select
    s.sales_month,
    s.channel_code,
    c.channel_group,
    s.region_code,
    sum(s.cases) as cases,
    sum(s.net_amount_gbp) as net_amount_gbp
from {{ ref('int_sales_monthly') }} as s
left join {{ ref('channel_mapping') }} as c on s.channel_code = c.channel_code
group by s.sales_month, s.channel_code, c.channel_group, s.region_code
