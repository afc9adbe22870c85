"""Sandbox dbt Cloud servers and clients for the client/export tests (real HTTP on loopback)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from migration.dbt_cloud.client import DbtCloudClient
from migration.dbt_cloud.settings import RetryPolicy
from sandbox.dbt_cloud import SandboxDbtCloud

FAST_RETRY = RetryPolicy(max_attempts=8, backoff_base=0.01, backoff_max=0.05, deadline=20.0)
"""Small limits so fault tests stay fast; production defaults are in RetryPolicy()."""


@pytest.fixture
def cloud() -> Iterator[SandboxDbtCloud]:
    """A fresh seeded sandbox account (9 jobs, one deleted) per test."""
    with SandboxDbtCloud.start() as server:
        yield server


@pytest.fixture
def client(cloud: SandboxDbtCloud) -> Iterator[DbtCloudClient]:
    with DbtCloudClient(
        cloud.url,
        cloud.account_id,
        cloud.token,
        token_source="environment variable DBT_CLOUD_API_TOKEN",
        retry=FAST_RETRY,
    ) as api:
        yield api
