{#- Convert an amount in a local currency to GBP with a units-per-GBP rate. -#}
{% macro to_gbp(amount, units_per_gbp) -%}
    round(cast({{ amount }} as {{ dbt.type_numeric() }}) / nullif({{ units_per_gbp }}, 0), 2)
{%- endmacro %}

{#- Nine-litre cases, the spirits industry's standard volume unit. -#}
{% macro nine_litre_cases(cases, bottles_per_case, bottle_size_ml) -%}
    round(cast({{ cases }} as {{ dbt.type_numeric() }}) * {{ bottles_per_case }} * {{ bottle_size_ml }} / 9000.0, 4)
{%- endmacro %}

{#- Money rounded to pence, typed the same on every warehouse. -#}
{% macro money(expression) -%}
    cast(round({{ expression }}, 2) as {{ dbt.type_numeric() }})
{%- endmacro %}
