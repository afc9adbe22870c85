{{ config(tags=['weekly']) }}
-- Distributors cannot report sell-out for days that have not happened yet.
select depletion_id, depletion_date
from {{ ref('fct_depletions') }}
where depletion_date > current_date
