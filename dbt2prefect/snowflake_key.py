"""Snowflake private keys, read by dbt-snowflake's own loader: what `blocks register` accepts, `doctor` and
parity connect with, is what dbt will load at run time.

dbt-snowflake reads a `private_key` string as PEM when it starts with `-`, else as base64 of DER, and a
`private_key_path` file as PEM (`dbt.adapters.snowflake.auth`). A key pasted with a leading newline, or with its
line breaks escaped as `\\n`, is neither; `normalized_private_key` fixes those before anything is saved.
Key text and passphrases never appear in an error.
"""

from __future__ import annotations

from typing import Any

from dbt2prefect.errors import ProfileError

_LOAD_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError)


def _loader_errors() -> tuple[type[BaseException], ...]:
    from cryptography.exceptions import UnsupportedAlgorithm

    return (*_LOAD_ERRORS, UnsupportedAlgorithm)


def _der(key: Any) -> bytes:
    from dbt.adapters.snowflake.connections import snowflake_private_key

    der: bytes = snowflake_private_key(key)
    return der


_ENCRYPTED_PEM = "-----BEGIN ENCRYPTED PRIVATE KEY-----"


def _why(exc: BaseException, source: str, passphrase_source: str, decrypting: bool) -> str:
    """What went wrong, from cryptography's message (which never quotes the key). `decrypting`: an encrypted PEM key
    was given with a passphrase. A wrong passphrase then mostly fails the decryption ("incorrect password"), but now
    and then decrypts to bytes that are no key (about 1 in 256, by chance padding), which cryptography reports as
    data it cannot deserialize: that is a wrong passphrase too, or a damaged key."""
    text = str(exc).lower()
    if "password was not given" in text:
        return f"{source} is encrypted and no passphrase was given; set {passphrase_source}"
    if "password was given" in text:
        return f"{source} is not encrypted but a passphrase was given; unset {passphrase_source}"
    if "incorrect password" in text or "bad decrypt" in text:
        return f"{source} cannot be decrypted with {passphrase_source}: the passphrase is wrong"
    if decrypting:
        return f"{source} cannot be decrypted with {passphrase_source}: the passphrase is wrong, or the key is damaged"
    return (
        f"{source} is not a private key dbt-snowflake can load (a PEM key, '-----BEGIN ... PRIVATE KEY-----', "
        "or the base64 of a DER key)"
    )


def private_key_der(
    text: str,
    passphrase: str | None,
    *,
    source: str = "the profile's private_key",
    passphrase_source: str = "private_key_passphrase",
) -> bytes:
    """The key as the unencrypted PKCS#8 DER bytes the Snowflake connector takes, loaded as dbt-snowflake loads it.

    Args:
        text: PEM text or base64 of DER (as a dbt profile's `private_key`), taken as it is.
        passphrase: the key's passphrase, if it is encrypted.
        source, passphrase_source: how errors name the key and the passphrase.

    Raises:
        ProfileError: dbt-snowflake cannot load it; the message names `source` and the fix, never the key.
    """
    from dbt.adapters.snowflake.auth import private_key_from_string

    try:
        key = private_key_from_string(text, passphrase or None)
    except _loader_errors() as exc:
        decrypting = bool(passphrase) and text.lstrip().startswith(_ENCRYPTED_PEM)
        raise ProfileError(_why(exc, source, passphrase_source, decrypting)) from None
    return _der(key)


def private_key_file_der(path: str, passphrase: str | None, *, source: str = "private_key_path") -> bytes:
    """`private_key_der` for a PEM key file (a dbt profile's `private_key_path`), read as dbt-snowflake reads it.

    Raises:
        ProfileError: the file cannot be read or loaded.
    """
    from dbt.adapters.snowflake.auth import private_key_from_file

    try:
        key = private_key_from_file(path, passphrase or None)
    except OSError as exc:
        raise ProfileError(f"{source} {path} cannot be read: {exc.strerror or exc}") from None
    except _loader_errors() as exc:
        with open(path, encoding="utf-8", errors="replace") as file:  # dbt-snowflake has just read it
            decrypting = bool(passphrase) and file.read(len(_ENCRYPTED_PEM) + 64).lstrip().startswith(_ENCRYPTED_PEM)
        raise ProfileError(_why(exc, f"{source} {path}", "private_key_passphrase", decrypting)) from None
    return _der(key)


def normalized_private_key(
    text: str,
    passphrase: str | None,
    *,
    source: str = "SNOWFLAKE_PRIVATE_KEY",
    passphrase_source: str = "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE",
) -> str:
    """The key text as dbt-snowflake loads it: surrounding blank space removed, `\\n` escapes of a one-line PEM
    turned into line breaks, a base64 DER key kept on one line; checked to load with `passphrase`.

    Raises:
        ProfileError: the key does not load (garbage, wrong or missing passphrase); nothing names the key.
    """
    key = text.strip()
    if key.startswith("-") and "\n" not in key and "\\n" in key:
        key = key.replace("\\n", "\n")
    if not key.startswith("-"):
        key = "".join(key.split())  # base64 of DER: the line breaks a terminal or a file adds are not part of it
    if not key:
        raise ProfileError(f"{source} is empty; set it to the PEM text of the private key, or unset it")
    private_key_der(key, passphrase, source=source, passphrase_source=passphrase_source)
    return key + "\n" if key.startswith("-") else key
