select order_id, customer_id, amount, current_timestamp as synced_at
from {{ source('raw', 'orders') }}
