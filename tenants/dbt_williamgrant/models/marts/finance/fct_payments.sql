select
    p.payment_id,
    p.invoice_id,
    i.order_id,
    p.payment_date,
    p.payment_method,
    i.currency_code,
    p.payment_amount,
    {{ to_gbp('p.payment_amount', 'fx.units_per_gbp') }} as payment_amount_gbp
from {{ ref('stg_finance__payments') }} as p
inner join {{ ref('stg_finance__invoices') }} as i on p.invoice_id = i.invoice_id
left join {{ ref('int_fx_rates_daily') }} as fx
    on i.currency_code = fx.currency_code
    and p.payment_date = fx.rate_date
