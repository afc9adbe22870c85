select
    {{ wg_surrogate_key(['distributor_id']) }} as distributor_key,
    distributor_id,
    distributor_name,
    country_code,
    country_name,
    region_code,
    region_name,
    home_currency_code,
    channel_code,
    channel_name,
    channel_group,
    account_manager_id,
    account_manager_name,
    credit_limit_gbp,
    distributor_status
from {{ ref('int_distributors_enriched') }}
