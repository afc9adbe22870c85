select
    d.distributor_id,
    d.distributor_name,
    d.country_code,
    c.country_name,
    c.region_code,
    c.region_name,
    c.currency_code as home_currency_code,
    d.channel_code,
    ch.channel_name,
    ch.channel_group,
    d.account_manager_id,
    r.sales_rep_name as account_manager_name,
    d.credit_limit_gbp,
    d.distributor_status,
    d.created_at,
    d.updated_at
from {{ ref('stg_crm__distributors') }} as d
left join {{ ref('country_region_mapping') }} as c on d.country_code = c.country_code
left join {{ ref('channel_mapping') }} as ch on d.channel_code = ch.channel_code
left join {{ ref('stg_crm__sales_reps') }} as r on d.account_manager_id = r.sales_rep_id
