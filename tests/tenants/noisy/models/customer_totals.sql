select customer_id, count(*) as orders, sum(amount) as amount
from {{ source('raw', 'orders') }}
group by customer_id
