select
    cast(product_id as integer) as product_id,
    upper(sku) as sku,
    trim(product_name) as product_name,
    cast(brand_id as integer) as brand_id,
    cast(bottle_size_ml as integer) as bottle_size_ml,
    cast(abv as {{ dbt.type_numeric() }}) as abv,
    cast(bottles_per_case as integer) as bottles_per_case,
    cast(list_price_gbp as {{ dbt.type_numeric() }}) as list_price_gbp,
    is_active,
    updated_at,
    loaded_at
from {{ source('erp', 'products') }}
