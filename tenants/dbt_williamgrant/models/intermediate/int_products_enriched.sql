select
    p.product_id,
    p.sku,
    p.product_name,
    p.brand_id,
    b.brand_name,
    b.brand_category,
    h.portfolio,
    h.category_group,
    h.price_tier,
    p.bottle_size_ml,
    p.abv,
    p.bottles_per_case,
    p.list_price_gbp,
    cast(p.bottles_per_case * p.bottle_size_ml / 9000.0 as {{ dbt.type_numeric() }}) as nine_litre_factor,
    p.is_active,
    p.updated_at
from {{ ref('stg_erp__products') }} as p
inner join {{ ref('stg_erp__brands') }} as b on p.brand_id = b.brand_id
left join {{ ref('brand_hierarchy') }} as h on p.brand_id = h.brand_id
