"""The API token: where it comes from and how it travels (only in the Authorization header).

The token is held in a `pydantic.SecretStr`, so `repr`/`str` of anything holding it print `**********`.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any, cast

import httpx
from pydantic import SecretStr

from migration.dbt_cloud.errors import DbtCloudConfigError


class TokenAuth(httpx.Auth):
    """httpx auth that sets `Authorization: Token <t>` on each request; its repr never shows the token."""

    def __init__(self, token: SecretStr | str, source: str = "token") -> None:
        secret = token if isinstance(token, SecretStr) else SecretStr(token)
        value = secret.get_secret_value().strip()
        if not value:
            raise DbtCloudConfigError(f"the dbt Cloud API token from {source} is empty; set a service token there")
        if not value.isascii() or not value.isprintable() or " " in value:
            # It could never be sent in a header: httpx refuses it as a protocol error, which looks like a network fault.
            raise DbtCloudConfigError(
                f"the dbt Cloud API token from {source} contains a line break, a space or another character a "
                "token never holds; set it again to the token alone (e.g. without a pasted newline)"
            )
        self._token = secret
        self.source = source

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Token {self._token.get_secret_value().strip()}"
        yield request

    def __repr__(self) -> str:
        return f"TokenAuth(source={self.source!r}, token=**********)"


def token_from_env(var: str) -> SecretStr | None:
    """The token in environment variable `var`, or None when it is unset or empty."""
    value = os.environ.get(var, "").strip()
    return SecretStr(value) if value else None


def token_from_block(block_name: str) -> SecretStr:
    """Load the token from a Prefect Secret block (needs a reachable Prefect API).

    Raises:
        DbtCloudConfigError: the block does not exist or cannot be read.
    """
    return secret_from_block(block_name, "dbt Cloud token", "token")


def secret_from_block(block_name: str, what: str, noun: str = "secret") -> SecretStr:
    """The string in a Prefect Secret block (needs a reachable Prefect API); `what` names it in messages.

    Raises:
        DbtCloudConfigError: the block does not exist, cannot be read, or holds no string.
    """
    from prefect.blocks.system import Secret

    try:
        # `_sync=True` makes the dispatcher run the sync implementation even under an event loop.
        block = cast("Secret[Any]", Secret.load(block_name, _sync=True))  # type: ignore[call-arg]
        value = block.get()
    except Exception as exc:
        # A missing block raises ValueError, an unreachable API httpx/Prefect errors; all mean the same
        # to the user. Only the type is kept so that no response payload can leak into the message.
        raise DbtCloudConfigError(
            f"could not read the {what} from Prefect Secret block {block_name!r} "
            f"({type(exc).__name__}); create it with `prefect block create secret`"
        ) from None
    if not isinstance(value, str) or not value.strip():
        raise DbtCloudConfigError(f"Prefect Secret block {block_name!r} holds no string {noun}")
    return SecretStr(value.strip())


def resolve_token(token_env: str, block_name: str | None = None) -> tuple[SecretStr, str]:
    """Find the token: environment variable first, then the Prefect Secret block.

    Returns:
        The token and a description of where it came from (for messages; never the value).

    Raises:
        DbtCloudConfigError: neither source holds a token.
    """
    token = token_from_env(token_env)
    if token is not None:
        return token, f"environment variable {token_env}"
    if block_name:
        try:
            return token_from_block(block_name), f"Prefect Secret block {block_name!r}"
        except DbtCloudConfigError as exc:
            raise DbtCloudConfigError(
                f"no dbt Cloud API token: set environment variable {token_env} (the tenant's token_env), "
                f"or store the token in the Prefect Secret block: {exc}"
            ) from None
    raise DbtCloudConfigError(
        f"no dbt Cloud API token: set environment variable {token_env} (or the tenant's token_env), "
        "or store it in the Prefect Secret block named in [tenant.blocks] dbt_cloud_token_block"
    )
