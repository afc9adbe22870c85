select
    cast(budget_id as integer) as budget_id,
    cast(budget_month as date) as budget_month,
    cast(fiscal_year as integer) as fiscal_year,
    cast(brand_id as integer) as brand_id,
    upper(region_code) as region_code,
    cast(budget_cases as {{ dbt.type_numeric() }}) as budget_cases,
    cast(budget_net_revenue_gbp as {{ dbt.type_numeric() }}) as budget_net_revenue_gbp,
    budget_version,
    loaded_at
from {{ source('finance', 'budgets') }}
