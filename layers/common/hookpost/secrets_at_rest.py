"""Subscription secrets at rest: sealed with HOOKPOST_ENCRYPTION_KEY when it is set.

Sealed values carry a prefix, so a database may hold both kinds (a key added later seals new
and rotated secrets; older ones still read). Without the key, a sealed value cannot be read.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken

from hookpost.config import get_settings

SEALED_PREFIX = "fernet:"


class SecretUnavailable(Exception):
    """A sealed secret whose key is missing or wrong."""


@lru_cache(maxsize=4)
def _fernet(key: str) -> Fernet:
    # Any long random string will do as the key (Secrets Manager generates one): the Fernet
    # key is its SHA-256.
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest()))


def seal(secret: str) -> str:
    key = get_settings().encryption_key
    if not key:
        return secret
    return SEALED_PREFIX + _fernet(key).encrypt(secret.encode()).decode()


def unseal(stored: str | None) -> str | None:
    if stored is None or not stored.startswith(SEALED_PREFIX):
        return stored
    key = get_settings().encryption_key
    if not key:
        raise SecretUnavailable("a sealed secret needs HOOKPOST_ENCRYPTION_KEY")
    try:
        return _fernet(key).decrypt(stored.removeprefix(SEALED_PREFIX).encode()).decode()
    except InvalidToken:
        raise SecretUnavailable("HOOKPOST_ENCRYPTION_KEY does not open this secret") from None


def generate_key() -> str:
    """A key for HOOKPOST_ENCRYPTION_KEY: 256 random bits, url-safe."""
    return secrets.token_urlsafe(32)
