{# Target-dependent: a development target builds a sample, every other target the whole table. #}
select * from {{ ref('stg_orders') }}
{% if target.name == 'dev' %}
where order_id <= 3
{% endif %}
