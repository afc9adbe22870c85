select
    cast(depletion_id as bigint) as depletion_id,
    cast(distributor_id as integer) as distributor_id,
    cast(product_id as integer) as product_id,
    cast(depletion_date as date) as depletion_date,
    lower(outlet_type) as outlet_type,
    cast(cases_depleted as {{ dbt.type_numeric() }}) as cases_depleted,
    reported_at,
    loaded_at
from {{ source('logistics', 'depletions') }}
