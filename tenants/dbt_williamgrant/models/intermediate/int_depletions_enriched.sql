select
    d.depletion_id,
    d.depletion_date,
    {{ dbt.date_trunc('week', 'd.depletion_date') }} as depletion_week,
    d.distributor_id,
    dist.country_code,
    dist.region_code,
    dist.channel_code,
    d.product_id,
    p.brand_id,
    d.outlet_type,
    d.cases_depleted,
    cast(d.cases_depleted * p.nine_litre_factor as {{ dbt.type_numeric() }}) as nine_litre_cases_depleted,
    d.reported_at
from {{ ref('stg_logistics__depletions') }} as d
inner join {{ ref('int_products_enriched') }} as p on d.product_id = p.product_id
inner join {{ ref('int_distributors_enriched') }} as dist on d.distributor_id = dist.distributor_id
