"""Bearer credentials: the admin token, the `hp_` keys of one application each, and the `hpp_`
tokens of portal sessions (one application's customer, scoped by labels). Who a token is; what a
caller may reach is the API's decision (`hookpost.api.auth`)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from hookpost.config import get_settings
from hookpost.db import queries
from hookpost.db.run import fetch_one

API_KEY_PREFIX = "hp_"
PORTAL_TOKEN_PREFIX = "hpp_"
# The one-time secret of a portal session's console link (`#link=` in its url).
PORTAL_LINK_PREFIX = "hppl_"


@dataclass(frozen=True)
class Caller:
    """Who a valid token belongs to: the admin, one application, or one application's customer
    through a portal session (`portal_labels`: what the subscriptions and events it may reach
    carry)."""

    application_id: uuid.UUID | None
    portal_labels: dict[str, str] | None = None

    @property
    def is_admin(self) -> bool:
        return self.application_id is None

    @property
    def is_portal(self) -> bool:
        return self.portal_labels is not None


ADMIN = Caller(application_id=None)


def new_api_key() -> tuple[str, bytes, str]:
    """A fresh key, its stored hash, and the short prefix shown in listings."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return key, hash_api_key(key), key[:10]


def hash_api_key(key: str) -> bytes:
    # Keys (and portal tokens and links) carry 256 random bits, so a plain SHA-256 is enough and
    # keeps lookups indexable.
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True)
class PortalSession:
    """A new portal session: its token and link are shown once, here."""

    id: uuid.UUID
    token: str
    link: str
    labels: dict[str, str]
    expires_at: datetime


def new_portal_session(
    application_id: uuid.UUID, labels: dict[str, str], ttl_s: int
) -> PortalSession:
    token = PORTAL_TOKEN_PREFIX + secrets.token_urlsafe(32)
    link = PORTAL_LINK_PREFIX + secrets.token_urlsafe(32)
    row = fetch_one(
        queries.PORTAL_SESSION_INSERT,
        {
            "application_id": application_id,
            "labels": Jsonb(labels),
            "token_hash": hash_api_key(token),
            "link_hash": hash_api_key(link),
            "ttl_s": ttl_s,
        },
    )
    assert row is not None
    return PortalSession(row["id"], token, link, row["labels"], row["expires_at"])


def exchange_portal_link(link: str) -> dict[str, Any] | None:
    """The session of a portal link never exchanged before, with a fresh `token` for the
    console; None for a link unknown, used, expired or revoked."""
    if not link.startswith(PORTAL_LINK_PREFIX):
        return None
    token = PORTAL_TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = fetch_one(
        queries.PORTAL_SESSION_EXCHANGE,
        {"link_hash": hash_api_key(link), "console_token_hash": hash_api_key(token)},
    )
    return {**row, "token": token} if row else None


def bearer_token(header: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header's value, or None."""
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def identify(token: str) -> Caller | None:
    """The caller a token stands for, or None for an unknown, revoked or expired one. The admin
    token is checked first, in constant time and without a query."""
    admin = get_settings().admin_token
    if admin and hmac.compare_digest(token.encode(), admin.encode()):
        return ADMIN
    if token.startswith(PORTAL_TOKEN_PREFIX):
        row = fetch_one(queries.PORTAL_SESSION_BY_TOKEN, {"token_hash": hash_api_key(token)})
        return Caller(row["application_id"], portal_labels=row["labels"]) if row else None
    if not token.startswith(API_KEY_PREFIX):
        return None
    row = fetch_one(queries.API_KEY_APPLICATION, {"key_hash": hash_api_key(token)})
    return Caller(application_id=row["application_id"]) if row else None
