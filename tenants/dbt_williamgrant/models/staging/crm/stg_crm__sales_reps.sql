select
    cast(rep_id as integer) as sales_rep_id,
    rep_name as sales_rep_name,
    lower(email) as email,
    upper(region_code) as region_code,
    cast(hired_date as date) as hired_date,
    loaded_at
from {{ source('crm', 'sales_reps') }}
