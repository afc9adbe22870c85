{% macro cents_to_units(column) -%}
    cast({{ column }} as decimal(12, 2)) / 100
{%- endmacro %}
