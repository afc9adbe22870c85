select
    b.brand_id,
    b.brand_name,
    b.brand_category,
    h.portfolio,
    h.category_group,
    h.price_tier,
    b.country_of_origin,
    b.launched_year
from {{ ref('stg_erp__brands') }} as b
left join {{ ref('brand_hierarchy') }} as h on b.brand_id = h.brand_id
