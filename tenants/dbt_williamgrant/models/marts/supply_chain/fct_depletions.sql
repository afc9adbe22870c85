{{
    config(
        materialized='incremental',
        unique_key='depletion_id',
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns'
    )
}}

select
    depletion_id,
    depletion_date,
    depletion_week,
    distributor_id,
    country_code,
    region_code,
    channel_code,
    product_id,
    brand_id,
    outlet_type,
    cases_depleted,
    nine_litre_cases_depleted,
    reported_at
from {{ ref('int_depletions_enriched') }}
{% if is_incremental() %}
where depletion_date >= (
    select {{ dbt.dateadd('day', -1 * var('incremental_lookback_days', 3), 'max(depletion_date)') }}
    from {{ this }}
)
{% endif %}
