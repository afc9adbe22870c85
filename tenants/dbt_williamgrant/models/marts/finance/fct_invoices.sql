select
    ip.invoice_id,
    ip.invoice_number,
    ip.order_id,
    o.distributor_id,
    ip.invoice_date,
    ip.due_date,
    ip.currency_code,
    ip.invoice_amount,
    ip.paid_amount,
    ip.outstanding_amount,
    {{ to_gbp('ip.invoice_amount', 'fx.units_per_gbp') }} as invoice_amount_gbp,
    {{ to_gbp('ip.outstanding_amount', 'fx.units_per_gbp') }} as outstanding_amount_gbp,
    ip.payment_count,
    ip.last_payment_date,
    ip.days_to_pay,
    ip.outstanding_amount <= 0 as is_settled
from {{ ref('int_invoice_payments') }} as ip
inner join {{ ref('stg_erp__orders') }} as o on ip.order_id = o.order_id
left join {{ ref('int_fx_rates_daily') }} as fx
    on ip.currency_code = fx.currency_code
    and ip.invoice_date = fx.rate_date
