select
    s.sales_month,
    s.brand_id,
    b.brand_name,
    sum(s.cases) as cases,
    sum(s.nine_litre_cases) as nine_litre_cases,
    sum(s.net_amount_gbp) as net_amount_gbp
from {{ ref('int_sales_monthly') }} as s
inner join {{ ref('dim_brands') }} as b on s.brand_id = b.brand_id
group by s.sales_month, s.brand_id, b.brand_name
