"""The polling flow refuses bad parameters before it reads any setting or reaches dbt Cloud."""

from __future__ import annotations

import pytest

from dbt2prefect.errors import ParameterError
from flows.shadow_flow import poll_dbt_cloud_runs


def test_a_since_that_is_not_a_time_is_refused_with_an_example() -> None:
    with pytest.raises(ParameterError, match=r"since 'yesterday' is not a date and time; give one such as"):
        poll_dbt_cloud_runs.fn(since="yesterday")


def test_an_overlap_that_is_not_positive_is_refused() -> None:
    with pytest.raises(ParameterError, match="overlap_minutes must be positive, got 0"):
        poll_dbt_cloud_runs.fn(overlap_minutes=0)
