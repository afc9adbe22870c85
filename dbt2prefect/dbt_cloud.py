"""What every layer knows of dbt Cloud without its client: the run status codes and the host setting.

The client itself (`migration.dbt_cloud`) builds on these; the tenant settings validate the host with them, and
parity reads run statuses, without importing the migration package.
"""

from __future__ import annotations

import ipaddress
from enum import IntEnum
from urllib.parse import urlsplit

from dbt2prefect.errors import ConfigError
from dbt2prefect.files import redact_url

LOOPBACK_NAMES = ("localhost",)


class RunStatus(IntEnum):
    """dbt Cloud run status codes."""

    QUEUED = 1
    STARTING = 2
    RUNNING = 3
    SUCCESS = 10
    ERROR = 20
    CANCELLED = 30


def _is_loopback(hostname: str) -> bool:
    if hostname in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _checked_host(host: str) -> tuple[str, str | None]:
    """(base URL, None) of a usable host setting, else ('', why not)."""
    value = (host or "").strip().rstrip("/")
    if not value:
        return "", "dbt Cloud host setting is empty; set [tenant.dbt_cloud] host or --host"
    if "://" not in value:
        value = f"https://{value}"
    shown = redact_url(host)
    try:
        parts = urlsplit(value)
        hostname = parts.hostname
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        return "", f"dbt Cloud host {shown!r} is not a URL like https://emea.dbt.com"
    if "@" in parts.netloc:
        return "", (
            f"dbt Cloud host {shown!r} must not contain credentials; put the token in the environment variable "
            "named by token_env (or the Prefect Secret block), and only scheme and host in the host setting"
        )
    if parts.scheme not in ("http", "https") or not hostname:
        return "", f"dbt Cloud host {shown!r} is not a URL like https://emea.dbt.com"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return "", (
            f"dbt Cloud host {shown!r} must be only scheme and host (e.g. https://cloud.getdbt.com), "
            "without /api/... or other path"
        )
    if parts.scheme == "http" and not _is_loopback(hostname):
        return "", f"dbt Cloud host {shown!r} uses plain http; use https (plain http is allowed only on loopback)"
    return f"{parts.scheme}://{parts.netloc}", None


def host_problem(host: str) -> str | None:
    """Why `host` is not a usable dbt Cloud host setting (naming the value, never its credentials), or None.

    Accepted: `emea.dbt.com`, `https://ACCOUNT_PREFIX.us1.dbt.com`, a single-tenant vanity URL, or
    `http://127.0.0.1:PORT` (plain http only on loopback, so a token never crosses a network in clear text).
    """
    return _checked_host(host)[1]


def normalize_host(host: str) -> str:
    """A host setting as the base URL `scheme://host[:port]`.

    Raises:
        ConfigError: `host_problem` names a problem.
    """
    url, problem = _checked_host(host)
    if problem is not None:
        raise ConfigError(problem)
    return url
