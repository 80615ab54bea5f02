"""In-function rate limits: token buckets kept in PostgreSQL, so they hold across every copy of
the function. Each request spends one token from the global bucket, its source IP's and, when
it carries one, its bearer token's, all in one statement, before any other work is done."""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from typing import Any

import psycopg

from hookpost.config import RateLimit, get_settings
from hookpost.credentials import bearer_token
from hookpost.db import queries
from hookpost.db.pool import DatabaseUnavailable, connection
from hookpost.db.run import array_literal
from hookpost.proxy_events import event_header

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Throttled:
    """A refused request: when to come back, and which limits it ran into."""

    retry_after_s: int
    scopes: list[str]

    @property
    def detail(self) -> str:
        return f"rate limit exceeded ({', '.join(self.scopes)}); retry in {self.retry_after_s} s"


def buckets(
    event: dict[str, Any], scopes: dict[str, RateLimit], key_hash: bytes | None = None
) -> dict[str, RateLimit]:
    """The buckets an API Gateway event draws from, by key. Public routes called without a
    token (health, docs) only have the global and IP buckets. `key_hash`: the SHA-256 of the
    request's bearer token, when the caller has it already (`credentials.hash_api_key`)."""
    identity = (event.get("requestContext") or {}).get("identity") or {}
    wanted = {
        "global": scopes["global"],
        f"ip:{identity.get('sourceIp') or 'unknown'}": scopes["ip"],
    }
    if key_hash is None:
        token = bearer_token(event_header(event, "authorization"))
        key_hash = hashlib.sha256(token.encode()).digest() if token else None
    if key_hash is not None:
        # Only a hash is kept: the table must not become a list of working credentials.
        wanted[f"key:{key_hash.hex()}"] = scopes["key"]
    return wanted


def retry_after(seconds: float) -> int:
    """Whole seconds for Retry-After: rounded up, so a client that waits that long finds a
    token, and at least 1."""
    return max(1, math.ceil(seconds))


def take(conn: psycopg.Connection, wanted: dict[str, RateLimit]) -> Throttled | None:
    """Spend one token from each bucket, or none if any is empty; None means go ahead."""
    row = conn.execute(
        queries.LIMITS_TAKE,
        {
            "keys": array_literal(wanted),
            "bursts": array_literal(float(limit.burst) for limit in wanted.values()),
            "rates": array_literal(float(limit.per_s) for limit in wanted.values()),
        },
    ).fetchone()
    if row["allowed"]:
        return None
    return Throttled(retry_after(row["retry_after_s"]), list(row["exhausted"]))


def check(event: dict[str, Any]) -> Throttled | None:
    """The limits' verdict on one request, unless they are off (HOOKPOST_LIMITS=off). When the
    check itself fails the request goes ahead: without a database it fails on its own (and
    /v1/health can still say so), and a broken check must not take the whole API down."""
    settings = get_settings().limits
    if not settings.enabled:
        return None
    try:
        with connection() as conn:
            return take(conn, buckets(event, settings.scopes))
    except DatabaseUnavailable as exc:
        log.warning("rate limits not checked: %s", exc)
    except psycopg.Error:
        log.exception("rate limits not checked")
    return None
