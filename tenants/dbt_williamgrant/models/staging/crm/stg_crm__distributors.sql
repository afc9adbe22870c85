select
    cast(distributor_id as integer) as distributor_id,
    trim(distributor_name) as distributor_name,
    upper(country_code) as country_code,
    upper(channel_code) as channel_code,
    cast(account_manager_id as integer) as account_manager_id,
    cast(credit_limit_gbp as {{ dbt.type_numeric() }}) as credit_limit_gbp,
    lower(status) as distributor_status,
    created_at,
    updated_at,
    loaded_at
from {{ source('crm', 'distributors') }}
