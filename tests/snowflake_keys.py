"""Real RSA key pairs for tests of Snowflake key-pair authentication (generated per session, never stored)."""

from __future__ import annotations

import base64
from functools import cache


@cache
def _key() -> object:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def pem_key(passphrase: str | None = None) -> str:
    """A PKCS#8 PEM private key, encrypted with `passphrase` when given (the same text for the same passphrase)."""
    from cryptography.hazmat.primitives import serialization

    encryption = (
        serialization.BestAvailableEncryption(passphrase.encode()) if passphrase else serialization.NoEncryption()
    )
    key = _key()
    text: bytes = key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    return text.decode()


def der_base64_key() -> str:
    """The same key as base64 of unencrypted DER (what dbt-snowflake takes as a one-line `private_key`)."""
    from cryptography.hazmat.primitives import serialization

    der: bytes = _key().private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return base64.b64encode(der).decode()


def pem_body_line(pem: str) -> str:
    """A line of the key's base64 body: present in any text that leaks the key."""
    return pem.splitlines()[3]
