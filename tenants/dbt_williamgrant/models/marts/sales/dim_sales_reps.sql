select
    r.sales_rep_id,
    r.sales_rep_name,
    r.email,
    r.region_code,
    r.hired_date,
    count(d.distributor_id) as managed_distributors
from {{ ref('stg_crm__sales_reps') }} as r
left join {{ ref('stg_crm__distributors') }} as d on r.sales_rep_id = d.account_manager_id
group by r.sales_rep_id, r.sales_rep_name, r.email, r.region_code, r.hired_date
