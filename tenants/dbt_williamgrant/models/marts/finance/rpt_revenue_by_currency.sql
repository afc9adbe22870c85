{{ config(tags=['hourly']) }}

{#- Open order book revalued at the latest FX rate, refreshed hourly for treasury. -#}
with latest_rates as (
    select currency_code, units_per_gbp
    from {{ ref('int_fx_rates_daily') }}
    where rate_date = (select max(rate_date) from {{ ref('int_fx_rates_daily') }})
)

select
    l.currency_code,
    count(distinct l.order_id) as open_orders,
    sum(l.net_amount) as net_amount_local,
    {{ to_gbp('sum(l.net_amount)', 'max(r.units_per_gbp)') }} as net_amount_gbp_at_latest_rate,
    {{ dbt.current_timestamp() }} as revalued_at
from {{ ref('int_order_lines_enriched') }} as l
inner join latest_rates as r on l.currency_code = r.currency_code
where l.order_status in ('open', 'shipped')
group by l.currency_code
