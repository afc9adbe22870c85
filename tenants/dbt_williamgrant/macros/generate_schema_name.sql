{#
    Every target builds the same schema names (staging, intermediate, marts_sales, ...):
    the custom schema is used as-is, without the target-schema prefix dbt adds by default.
    Targets differ only by database. The profile's schema is only a fallback for nodes
    without a schema config.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema | trim }}
    {%- else -%}
        {{ custom_schema_name | trim | lower }}
    {%- endif -%}
{%- endmacro %}
