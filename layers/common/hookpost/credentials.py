"""Bearer credentials: the admin token, and the `hp_` keys of one application each. Who a token
is; what a caller may reach is the API's decision (`hookpost.api.auth`)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

from hookpost.config import get_settings
from hookpost.db import queries
from hookpost.db.run import fetch_one

API_KEY_PREFIX = "hp_"


@dataclass(frozen=True)
class Caller:
    """Who a valid token belongs to: the admin, or one application."""

    application_id: uuid.UUID | None

    @property
    def is_admin(self) -> bool:
        return self.application_id is None


ADMIN = Caller(application_id=None)


def new_api_key() -> tuple[str, bytes, str]:
    """A fresh key, its stored hash, and the short prefix shown in listings."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return key, hash_api_key(key), key[:10]


def hash_api_key(key: str) -> bytes:
    # Keys carry 256 random bits, so a plain SHA-256 is enough and keeps lookups indexable.
    return hashlib.sha256(key.encode()).digest()


def bearer_token(header: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header's value, or None."""
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def identify(token: str) -> Caller | None:
    """The caller a token stands for, or None for an unknown or revoked one. The admin token is
    checked first, in constant time and without a query."""
    admin = get_settings().admin_token
    if admin and hmac.compare_digest(token.encode(), admin.encode()):
        return ADMIN
    if not token.startswith(API_KEY_PREFIX):
        return None
    row = fetch_one(queries.API_KEY_APPLICATION, {"key_hash": hash_api_key(token)})
    return Caller(application_id=row["application_id"]) if row else None
