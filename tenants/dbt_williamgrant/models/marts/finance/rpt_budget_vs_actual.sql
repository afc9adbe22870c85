with actuals as (
    select
        sales_month,
        brand_id,
        region_code,
        sum(cases) as actual_cases,
        sum(net_amount_gbp) as actual_net_revenue_gbp
    from {{ ref('int_sales_monthly') }}
    group by sales_month, brand_id, region_code
)

select
    {{ wg_surrogate_key(['b.budget_month', 'b.brand_id', 'b.region_code']) }} as budget_vs_actual_key,
    b.budget_month,
    b.fiscal_year,
    b.brand_id,
    b.region_code,
    b.budget_cases,
    coalesce(a.actual_cases, 0) as actual_cases,
    b.budget_net_revenue_gbp,
    coalesce(a.actual_net_revenue_gbp, 0) as actual_net_revenue_gbp,
    coalesce(a.actual_net_revenue_gbp, 0) - b.budget_net_revenue_gbp as revenue_variance_gbp,
    case
        when b.budget_net_revenue_gbp = 0 then null
        else round((coalesce(a.actual_net_revenue_gbp, 0) - b.budget_net_revenue_gbp)
            / b.budget_net_revenue_gbp, 4)
    end as revenue_variance_pct
from {{ ref('stg_finance__budgets') }} as b
left join actuals as a
    on b.budget_month = a.sales_month
    and b.brand_id = a.brand_id
    and b.region_code = a.region_code
