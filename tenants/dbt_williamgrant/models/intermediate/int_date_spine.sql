{{ wg_date_spine(
    "(select min(order_date) from " ~ ref('stg_erp__orders') ~ ")",
    "(select " ~ dbt.dateadd('day', 30, 'max(order_date)') ~ " from " ~ ref('stg_erp__orders') ~ ")"
) }}
