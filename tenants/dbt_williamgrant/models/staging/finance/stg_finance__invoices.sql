select
    cast(invoice_id as bigint) as invoice_id,
    invoice_number,
    cast(order_id as bigint) as order_id,
    cast(invoice_date as date) as invoice_date,
    cast(due_date as date) as due_date,
    upper(currency_code) as currency_code,
    cast(amount as {{ dbt.type_numeric() }}) as invoice_amount,
    loaded_at
from {{ source('finance', 'invoices') }}
