select
    id as order_id,
    customer_id,
    ordered_at,
    status,
    {{ shop_utils.cents_to_units('amount_cents') }} as amount
from {{ ref('raw_orders') }}
