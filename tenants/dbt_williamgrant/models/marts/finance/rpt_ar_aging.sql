with open_items as (
    select
        distributor_id,
        outstanding_amount_gbp,
        {{ dbt.datediff('due_date', 'current_date', 'day') }} as days_past_due
    from {{ ref('fct_invoices') }}
    where not is_settled
)

select
    o.distributor_id,
    d.distributor_name,
    d.region_code,
    sum(case when o.days_past_due <= 0 then o.outstanding_amount_gbp else 0 end) as not_yet_due_gbp,
    sum(case when o.days_past_due between 1 and 30 then o.outstanding_amount_gbp else 0 end) as past_due_1_30_gbp,
    sum(case when o.days_past_due between 31 and 60 then o.outstanding_amount_gbp else 0 end) as past_due_31_60_gbp,
    sum(case when o.days_past_due > 60 then o.outstanding_amount_gbp else 0 end) as past_due_over_60_gbp,
    sum(o.outstanding_amount_gbp) as total_outstanding_gbp
from open_items as o
inner join {{ ref('dim_distributors') }} as d on o.distributor_id = d.distributor_id
group by o.distributor_id, d.distributor_name, d.region_code
