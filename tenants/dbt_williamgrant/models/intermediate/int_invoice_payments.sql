{{ config(tags=['finance']) }}

with paid as (
    select
        invoice_id,
        sum(payment_amount) as paid_amount,
        max(payment_date) as last_payment_date,
        count(*) as payment_count
    from {{ ref('stg_finance__payments') }}
    group by invoice_id
)

select
    i.invoice_id,
    i.invoice_number,
    i.order_id,
    i.invoice_date,
    i.due_date,
    i.currency_code,
    i.invoice_amount,
    coalesce(p.paid_amount, 0) as paid_amount,
    i.invoice_amount - coalesce(p.paid_amount, 0) as outstanding_amount,
    coalesce(p.payment_count, 0) as payment_count,
    p.last_payment_date,
    case
        when p.last_payment_date is not null
            then {{ dbt.datediff('i.invoice_date', 'p.last_payment_date', 'day') }}
    end as days_to_pay
from {{ ref('stg_finance__invoices') }} as i
left join paid as p on i.invoice_id = p.invoice_id
