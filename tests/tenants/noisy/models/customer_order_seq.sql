with numbered as (
    select
        order_id,
        customer_id,
        order_date,
        amount,
        row_number() over (partition by customer_id order by order_date) as order_seq
    from {{ source('raw', 'orders') }}
)

select * from numbered
