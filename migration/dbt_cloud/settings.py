"""Client settings: host, account, timeouts and retry limits. Validated early; errors name the setting."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from dbt2prefect.dbt_cloud import host_problem
from dbt2prefect.dbt_cloud import normalize_host as core_normalize_host
from migration.dbt_cloud.errors import DbtCloudConfigError

DBT_CLOUD_DOMAINS = ("getdbt.com", "dbt.com")
"""Domains of dbt Cloud's multi-tenant and cell hosts (single-tenant vanity hosts are the configured host)."""


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to retry. Only 429, 5xx and connection errors are retried.

    A rate limit (429) is budgeted in time, not attempts: dbt Cloud documents a five-minute cooldown and sends
    Retry-After only on SCIM endpoints, so a request keeps backing off (exponentially, with jitter) until it has
    waited `rate_limit_wait` seconds in total. 5xx and connection errors are budgeted in attempts.

    Attributes:
        max_attempts: attempts per request for 5xx and connection errors, the first one included.
        backoff_base: first backoff in seconds; doubles per attempt.
        backoff_max: cap of one backoff.
        deadline: total seconds one request (all attempts and waits) may take.
        max_retry_after: cap applied to a server's Retry-After header.
        rate_limit_wait: total seconds one request may wait on 429 answers before giving up.
    """

    max_attempts: int = 6
    backoff_base: float = 1.0
    backoff_max: float = 120.0
    deadline: float = 1200.0
    max_retry_after: float = 300.0
    rate_limit_wait: float = 600.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise DbtCloudConfigError("retry setting max_attempts must be at least 1")
        values = (self.backoff_base, self.backoff_max, self.deadline, self.max_retry_after, self.rate_limit_wait)
        if min(values) < 0:
            raise DbtCloudConfigError(
                "retry settings backoff_base, backoff_max, deadline, max_retry_after and rate_limit_wait "
                "must not be negative"
            )

    @classmethod
    def for_rate_limit_minutes(cls, minutes: float) -> RetryPolicy:
        """The default policy with a rate-limit budget of `minutes` (the tenant's `rate_limit_minutes`)."""
        if minutes <= 0:
            raise DbtCloudConfigError(
                f"[tenant.dbt_cloud] rate_limit_minutes must be positive, got {minutes}; dbt Cloud's 429 "
                "cooldown is five minutes, so 10 is a sensible value"
            )
        seconds = minutes * 60.0
        return cls(rate_limit_wait=seconds, deadline=max(cls.deadline, seconds + 300.0))

    def backoff(self, attempt: int) -> float:
        """Backoff before attempt `attempt + 1` (attempt counts from 1), without jitter."""
        return float(min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1))))


def normalize_host(host: str) -> str:
    """Turn a host setting into a base URL `scheme://host[:port]` (see `dbt2prefect.dbt_cloud.host_problem`).

    Raises:
        DbtCloudConfigError: the value is empty, has a path, or asks for plain http to a remote host.
    """
    problem = host_problem(host)
    if problem is not None:
        raise DbtCloudConfigError(problem)
    return core_normalize_host(host)


def is_dbt_cloud_host(url: str, configured: str) -> bool:
    """True when `url` (a redirect target) is the configured host or an https dbt Cloud host."""
    parts, home = urlsplit(url), urlsplit(configured)
    if not parts.hostname:
        return True  # a relative Location stays on the configured host
    if (parts.scheme, parts.hostname, parts.port) == (home.scheme, home.hostname, home.port):
        return True
    host = parts.hostname.lower()
    return parts.scheme == "https" and any(host == d or host.endswith("." + d) for d in DBT_CLOUD_DOMAINS)
