{%- set tables = [
    ('erp', 'orders'), ('erp', 'order_lines'), ('crm', 'distributors'),
    ('logistics', 'shipments'), ('logistics', 'depletions'), ('finance', 'invoices'),
] -%}

{% for source_name, table_name in tables %}
select
    cast('{{ source_name }}.{{ table_name }}' as {{ dbt.type_string() }}) as source_table,
    count(*) as row_count,
    max(loaded_at) as max_loaded_at
from {{ source(source_name, table_name) }}
{% if not loop.last %}union all{% endif %}
{% endfor %}
