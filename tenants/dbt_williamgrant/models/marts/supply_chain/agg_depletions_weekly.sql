select
    cast(depletion_week as date) as depletion_week,
    brand_id,
    region_code,
    sum(cases_depleted) as cases_depleted,
    sum(nine_litre_cases_depleted) as nine_litre_cases_depleted,
    count(distinct distributor_id) as reporting_distributors
from {{ ref('fct_depletions') }}
group by cast(depletion_week as date), brand_id, region_code
