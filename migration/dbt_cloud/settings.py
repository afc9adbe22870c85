"""Client settings: host, account, timeouts and retry limits. Validated early; errors name the setting."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from migration.dbt_cloud.errors import DbtCloudConfigError

LOOPBACK_NAMES = ("localhost",)


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to retry. Only 429, 5xx and connection errors are retried.

    Attributes:
        max_attempts: attempts per request, the first one included.
        backoff_base: first backoff in seconds; doubles per attempt.
        backoff_max: cap of one backoff; dbt Cloud's documented 429 cooldown is five minutes.
        deadline: total seconds one request (all attempts and waits) may take.
        max_retry_after: cap applied to a server's Retry-After header.
    """

    max_attempts: int = 6
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    deadline: float = 900.0
    max_retry_after: float = 300.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise DbtCloudConfigError("retry setting max_attempts must be at least 1")
        if min(self.backoff_base, self.backoff_max, self.deadline, self.max_retry_after) < 0:
            raise DbtCloudConfigError("retry settings backoff_base, backoff_max, deadline must not be negative")

    def backoff(self, attempt: int) -> float:
        """Backoff before attempt `attempt + 1` (attempt counts from 1), without jitter."""
        return float(min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1))))


def _is_loopback(hostname: str) -> bool:
    if hostname in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def normalize_host(host: str) -> str:
    """Turn a host setting into a base URL `scheme://host[:port]`.

    Accepts `emea.dbt.com`, `https://ACCOUNT_PREFIX.us1.dbt.com`, a single-tenant vanity URL, or
    `http://127.0.0.1:PORT` (plain http only on loopback, so a token never crosses a network in clear text).

    Raises:
        DbtCloudConfigError: the value is empty, has a path, or asks for plain http to a remote host.
    """
    value = (host or "").strip().rstrip("/")
    if not value:
        raise DbtCloudConfigError("dbt Cloud host setting is empty; set [tenant.dbt_cloud] host or --host")
    if "://" not in value:
        value = f"https://{value}"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DbtCloudConfigError(f"dbt Cloud host {host!r} is not a URL like https://emea.dbt.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise DbtCloudConfigError(
            f"dbt Cloud host {host!r} must be only scheme and host (e.g. https://cloud.getdbt.com), "
            "without /api/... or other path"
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise DbtCloudConfigError(
            f"dbt Cloud host {host!r} uses plain http; use https (plain http is allowed only on loopback)"
        )
    if parts.username or parts.password:
        raise DbtCloudConfigError("dbt Cloud host must not contain credentials; the token goes in an env var")
    return f"{parts.scheme}://{parts.netloc}"
