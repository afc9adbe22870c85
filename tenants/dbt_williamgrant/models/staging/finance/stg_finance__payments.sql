select
    cast(payment_id as bigint) as payment_id,
    cast(invoice_id as bigint) as invoice_id,
    cast(payment_date as date) as payment_date,
    cast(amount as {{ dbt.type_numeric() }}) as payment_amount,
    lower(payment_method) as payment_method,
    loaded_at
from {{ source('finance', 'payments') }}
