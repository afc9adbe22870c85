"""Which Prefect API a local command talks to: `PREFECT_API_URL`, else a temporary server started here.

Prefect starts a temporary server by itself on first use when no API URL is set; started inside a flow call, a
slow start surfaces as a long traceback from deep in the engine. `ensure_api()` starts it up front instead, so a
failure is one message saying what to do.
"""

from __future__ import annotations

from dbt2prefect.errors import ConfigError

_ADVICE = (
    "start the sandbox (`dbt2prefect sandbox up`) and export the PREFECT_API_URL it prints, or set "
    "PREFECT_API_URL to your Prefect server"
)


def ensure_api(timeout: int | None = None) -> str:
    """The API URL to use: the configured one, or a temporary server's, started now (Prefect's own server).

    Args:
        timeout: seconds the temporary server may take to answer (default: Prefect's
            PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS).

    Raises:
        ConfigError: no API URL is set and the temporary server is disabled or did not start in time.
    """
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.api.url:
        return str(settings.api.url)
    if not settings.server.ephemeral.enabled:
        raise ConfigError(f"no Prefect API: PREFECT_API_URL is not set and the temporary server is disabled; {_ADVICE}")
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    wait = timeout or settings.server.ephemeral.startup_timeout_seconds
    try:
        server.start(timeout=wait)
    except Exception as exc:  # Prefect raises RuntimeError on timeout, httpx errors on a bad answer
        server.stop()
        first = str(exc).split(" stdout:", 1)[0].strip()
        raise ConfigError(
            f"PREFECT_API_URL is not set and Prefect's temporary server did not start within {wait} s ({first}); "
            f"{_ADVICE}"
        ) from None
    return server.api_url
