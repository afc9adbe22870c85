"""Sandbox dbt Cloud servers for the sandbox tests (no dbt runs here: those live in tests/migration)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sandbox.dbt_cloud import SandboxDbtCloud


@pytest.fixture
def cloud() -> Iterator[SandboxDbtCloud]:
    """A fresh seeded sandbox per test (tests change jobs and faults)."""
    with SandboxDbtCloud.start() as server:
        yield server


@pytest.fixture
def http(cloud: SandboxDbtCloud) -> Iterator[httpx.Client]:
    """A plain httpx client with the sandbox's token, to test the server's contract directly."""
    with httpx.Client(base_url=cloud.url, headers={"Authorization": f"Token {cloud.token}"}) as client:
        yield client
