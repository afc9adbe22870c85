select
    product_id,
    sku,
    product_name,
    brand_id,
    brand_name,
    portfolio,
    price_tier,
    bottle_size_ml,
    abv,
    bottles_per_case,
    nine_litre_factor,
    list_price_gbp,
    is_active
from {{ ref('int_products_enriched') }}
