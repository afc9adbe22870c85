"""One private-key loader, dbt-snowflake's: `blocks register`, `doctor` and parity read a key as dbt will."""

from __future__ import annotations

from pathlib import Path

import fakesnow
import pytest
from typer.testing import CliRunner

from cli.app import app
from dbt2prefect.errors import ProfileError
from dbt2prefect.profiles import DbtTargetProfile, block_from_env
from dbt2prefect.snowflake_key import normalized_private_key, private_key_der, private_key_file_der
from dbt2prefect.warehouse import warehouse_from_profile_output
from tests.snowflake_keys import _key, der_base64_key, pem_body_line, pem_key

PASSPHRASE = "key-test-passphrase-91"
ENV = {
    "SNOWFLAKE_ACCOUNT": "wg-test",
    "SNOWFLAKE_USER": "svc_dbt",
    "SNOWFLAKE_ROLE": "TRANSFORMER",
    "SNOWFLAKE_WAREHOUSE": "TRANSFORMING",
    "SNOWFLAKE_DATABASE": "ANALYTICS",
    "SNOWFLAKE_SCHEMA": "DBT_WG",
}


def _dbt_loads(text: str, passphrase: str | None) -> bool:
    from dbt.adapters.snowflake.auth import private_key_from_string

    try:
        private_key_from_string(text, passphrase)
    except (ValueError, TypeError):
        return False
    return True


def _output(key: str, passphrase: str | None = None) -> dict[str, str]:
    output = {"type": "snowflake", "account": "wg-test", "user": "svc_dbt", "private_key": key}
    return output | ({"private_key_passphrase": passphrase} if passphrase else {})


def test_a_pem_key_with_a_leading_newline_is_saved_as_dbt_loads_it() -> None:
    pasted = "\n" + pem_key(PASSPHRASE)
    assert not _dbt_loads(pasted, PASSPHRASE), "dbt-snowflake reads it as base64 DER: it would fail every run"
    block = block_from_env(
        "snowflake", {**ENV, "SNOWFLAKE_PRIVATE_KEY": pasted, "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": PASSPHRASE}
    )
    assert block.private_key is not None
    saved = block.private_key.get_secret_value()
    assert saved == pem_key(PASSPHRASE) and _dbt_loads(saved, PASSPHRASE)


def test_doctor_and_parity_read_a_key_as_dbt_does() -> None:
    # A base64 DER key: dbt-snowflake loads it, so parity and doctor connect with it too.
    der = der_base64_key()
    assert _dbt_loads(der, None)
    warehouse_from_profile_output(_output(der)).close()
    assert private_key_der(der, None) == private_key_der(pem_key(), None)
    # A PEM key with a leading newline: dbt-snowflake cannot load it, so doctor and parity refuse it as well.
    with pytest.raises(ProfileError, match="not a private key dbt-snowflake can load"):
        warehouse_from_profile_output(_output("\n" + pem_key()))


@pytest.mark.parametrize(
    ("text", "passphrase", "message"),
    [
        ("garbage", None, "SNOWFLAKE_PRIVATE_KEY is not a private key dbt-snowflake can load"),
        (pem_key(PASSPHRASE), "wrong-passphrase", "the passphrase is wrong"),
        (pem_key(PASSPHRASE), None, "encrypted and no passphrase was given; set SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"),
        (pem_key(), PASSPHRASE, "not encrypted but a passphrase was given"),
        ("  \n", None, "SNOWFLAKE_PRIVATE_KEY is empty"),
    ],
)
def test_a_key_that_does_not_load_is_refused_naming_the_variable(
    text: str, passphrase: str | None, message: str
) -> None:
    with pytest.raises(ProfileError, match=message) as caught:
        normalized_private_key(text, passphrase)
    assert pem_body_line(pem_key(PASSPHRASE)) not in str(caught.value) and PASSPHRASE not in str(caught.value)


def _key_a_wrong_passphrase_decrypts_to_no_key() -> str:
    """An encryption of the test key that the wrong passphrase decrypts, by chance, to bytes that are no key
    (cryptography then reports data it cannot deserialize, not a wrong password): about 1 encryption in 256."""
    from cryptography.hazmat.primitives import serialization
    from dbt.adapters.snowflake.auth import private_key_from_string

    for _ in range(4000):
        pem: str = (
            _key()
            .private_bytes(  # type: ignore[attr-defined]
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(PASSPHRASE.encode()),
            )
            .decode()
        )
        try:
            private_key_from_string(pem, "wrong-passphrase")
        except ValueError as exc:
            if "incorrect password" not in str(exc).lower():
                return pem
    pytest.skip("no encryption in 4,000 decrypted to no key under the wrong passphrase (odds about 1 in 6 million)")


def test_a_wrong_passphrase_that_decrypts_to_no_key_is_still_named_as_the_passphrase(tmp_path: Path) -> None:
    pem = _key_a_wrong_passphrase_decrypts_to_no_key()
    with pytest.raises(ProfileError, match="cannot be decrypted with SNOWFLAKE_PRIVATE_KEY_PASSPHRASE: the passphrase"):
        normalized_private_key(pem, "wrong-passphrase")
    path = tmp_path / "rsa_key.p8"
    path.write_text(pem, encoding="utf-8")
    with pytest.raises(ProfileError, match=f"private_key_path {path} cannot be decrypted with private_key_passphrase"):
        private_key_file_der(str(path), "wrong-passphrase")
    assert private_key_file_der(str(path), PASSPHRASE) == private_key_der(pem_key(), None), "the right one loads it"


def test_escaped_line_breaks_and_wrapped_der_are_normalised() -> None:
    pem = pem_key()
    assert normalized_private_key(pem.strip().replace("\n", "\\n"), None) == pem
    der = der_base64_key()
    wrapped = "\n".join(der[i : i + 64] for i in range(0, len(der), 64)) + "\n"
    assert normalized_private_key(wrapped, None) == der


def test_blocks_register_refuses_a_key_it_cannot_load_before_overwriting_the_block(
    prefect_api: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SNOWFLAKE_PASSWORD", raising=False)
    monkeypatch.delenv("SNOWFLAKE_PRIVATE_KEY", raising=False)
    good = tmp_path / "rsa_key.p8"
    good.write_text(pem_key(PASSPHRASE))
    monkeypatch.setenv("SNOWFLAKE_PRIVATE_KEY_PATH", str(good))
    monkeypatch.setenv("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", PASSPHRASE)
    runner = CliRunner()
    assert runner.invoke(app, ["blocks", "register", "--target", "parity"]).exit_code == 0
    before = DbtTargetProfile.load("dbt-wg-parity").private_key

    monkeypatch.setenv("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", "not-the-passphrase")
    wrong = runner.invoke(app, ["blocks", "register", "--target", "parity"])
    assert wrong.exit_code == 2 and "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE" in wrong.stderr, wrong.output
    garbage = tmp_path / "garbage.p8"
    garbage.write_text("not a key at all")
    monkeypatch.setenv("SNOWFLAKE_PRIVATE_KEY_PATH", str(garbage))
    bad = runner.invoke(app, ["blocks", "register", "--target", "parity"])
    assert bad.exit_code == 2 and f"SNOWFLAKE_PRIVATE_KEY_PATH={garbage}" in bad.stderr, bad.output
    assert "Traceback" not in wrong.output + bad.output
    assert pem_body_line(pem_key(PASSPHRASE)) not in wrong.output + bad.output
    assert DbtTargetProfile.load("dbt-wg-parity").private_key == before, "the saved block is untouched"


def test_doctor_asks_the_session_for_role_warehouse_and_database(prefect_api: None, tmp_path: Path) -> None:
    """Against fakesnow through the real connector. fakesnow has no current_warehouse(): asked for all three the
    check fails (it never passes on `select 1` alone); asked for role and database it passes and names them."""
    from dbt2prefect.tenant import load_tenant
    from migration.doctor import CheckStatus, profile_check, session_problem
    from sandbox.stack import derive_tenant_file

    tenant = load_tenant(
        derive_tenant_file(
            tmp_path / "t.toml", overrides={"blocks": {"profile_prefix": "keytest", "dbt_cloud_token_block": "none"}}
        )
    )
    env = {**ENV, "SNOWFLAKE_PRIVATE_KEY": der_base64_key()}
    block_from_env("snowflake", env).save(tenant.block_name("prod"), overwrite=True)
    with fakesnow.patch():
        known = profile_check(tenant, "prod", session=("role", "database"))
        everything = profile_check(tenant, "prod")
    assert known.status is CheckStatus.OK and "database ANALYTICS" in known.detail, known
    assert everything.status is CheckStatus.FAIL and "current_warehouse" in everything.detail, everything
    assert session_problem({"role": "R", "warehouse": "W", "database": "D"}) is None
    assert session_problem({"role": None, "warehouse": "W", "database": None}) == (
        "the session has no current_role(), current_database() (NULL)"
    )
