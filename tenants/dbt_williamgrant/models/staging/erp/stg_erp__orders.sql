select
    cast(order_id as bigint) as order_id,
    order_number,
    cast(distributor_id as integer) as distributor_id,
    cast(sales_rep_id as integer) as sales_rep_id,
    cast(order_date as date) as order_date,
    cast(requested_delivery_date as date) as requested_delivery_date,
    upper(currency_code) as currency_code,
    lower(status) as order_status,
    lower(status) = 'cancelled' as is_cancelled,
    created_at,
    updated_at,
    loaded_at
from {{ source('erp', 'orders') }}
