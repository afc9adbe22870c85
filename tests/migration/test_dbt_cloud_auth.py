"""The token can come from a Prefect Secret block when the environment variable is unset."""

from __future__ import annotations

import pytest
from prefect.blocks.system import Secret

from migration.dbt_cloud.auth import resolve_token
from migration.dbt_cloud.errors import DbtCloudConfigError


@pytest.mark.usefixtures("prefect_api")
def test_token_from_prefect_secret_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WG_UNSET_TOKEN_ENV", raising=False)
    Secret(value="dbtc_from-block").save("dbt-wg-dbt-cloud-token-test", overwrite=True)
    token, source = resolve_token("WG_UNSET_TOKEN_ENV", "dbt-wg-dbt-cloud-token-test")
    assert token.get_secret_value() == "dbtc_from-block"
    assert source == "Prefect Secret block 'dbt-wg-dbt-cloud-token-test'"
    assert "dbtc_from-block" not in repr(token)


@pytest.mark.usefixtures("prefect_api")
def test_missing_secret_block_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WG_UNSET_TOKEN_ENV", raising=False)
    with pytest.raises(DbtCloudConfigError, match="Prefect Secret block 'no-such-block'") as info:
        resolve_token("WG_UNSET_TOKEN_ENV", "no-such-block")
    assert info.value.exit_code == 2
    assert "set environment variable WG_UNSET_TOKEN_ENV" in str(info.value)  # the variable to set is named
