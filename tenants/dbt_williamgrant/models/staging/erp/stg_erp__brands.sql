select
    cast(brand_id as integer) as brand_id,
    trim(brand_name) as brand_name,
    lower(category) as brand_category,
    upper(country_of_origin) as country_of_origin,
    cast(launched_year as integer) as launched_year,
    loaded_at
from {{ source('erp', 'brands') }}
