"""Errors of the dbt Cloud client. Messages name the method, URL path and status, never the token."""

from __future__ import annotations

from dbt2prefect.errors import ExternalServiceError


class DbtCloudApiError(ExternalServiceError):
    """Base class: a dbt Cloud API call failed."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class DbtCloudConfigError(DbtCloudApiError):
    """The client's settings (host, account id, token source) are unusable."""

    exit_code = 2


class DbtCloudAuthError(DbtCloudApiError):
    """401/403: the token or the host is wrong."""

    exit_code = 2


class DbtCloudNotFoundError(DbtCloudApiError):
    """404: the id or the account is wrong (dbt Cloud also answers 404 for objects the token cannot see)."""

    exit_code = 2


class DbtCloudBadRequestError(DbtCloudApiError):
    """400 or another non-retryable 4xx: the request was rejected; the message carries the API's reason."""

    exit_code = 2


class DbtCloudRetriesExhaustedError(DbtCloudApiError):
    """429, 5xx or connection errors persisted past the retry limit or the total deadline."""

    exit_code = 3


class DbtCloudResponseError(DbtCloudApiError):
    """The API answered 2xx with a body that is not the documented envelope."""

    exit_code = 3
