"""Fetch links of thin deliveries: `GET fetch_url`, without credentials, answers the full event
for 24 hours.

A link is its own credential, so nothing is stored for it: its token carries the event, the
subscription it was sent to and its expiry, and an HMAC of them keyed by the subscription's secret
as stored (sealed when HOOKPOST_ENCRYPTION_KEY is set, so then not even the receiver could make
one). An altered or made-up token fails the HMAC; a genuine one past its expiry is told apart
(410, not 404). The fetch also checks that the event was sent to that subscription, so a
receiver holding its own secret can at most reach again what it was sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import time
import uuid
from dataclasses import dataclass

# How long a link answers, from the send it was made for.
LINK_TTL_S = 24 * 3600
_MAC_BYTES = 16
_LAYOUT = struct.Struct(">16s16sQ")
_PURPOSE = b"hookpost fetch link v1\x00"


@dataclass(frozen=True)
class Link:
    """What a token says: the event, the subscription it went to, when it stops answering."""

    event_id: uuid.UUID
    subscription_id: uuid.UUID
    expires_at: int  # unix seconds
    mac: bytes

    def signed_with(self, stored_secret: str) -> bool:
        return hmac.compare_digest(self.mac, _mac(stored_secret, self._fields()))

    @property
    def expired(self) -> bool:
        return time.time() >= self.expires_at

    def _fields(self) -> bytes:
        return _LAYOUT.pack(self.event_id.bytes, self.subscription_id.bytes, self.expires_at)


def make_token(
    event_id: uuid.UUID, subscription_id: uuid.UUID, stored_secret: str, *, now: float
) -> str:
    """The token of a link to the event, made when it is sent to the subscription."""
    fields = _LAYOUT.pack(event_id.bytes, subscription_id.bytes, int(now) + LINK_TTL_S)
    return _encoded(fields + _mac(stored_secret, fields))


def read_token(token: str) -> Link | None:
    """The link a token says it is (not yet checked against a secret); None if malformed."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except ValueError:
        return None
    # One spelling per token: the decoder skips stray characters and ignores trailing bits.
    if len(raw) != _LAYOUT.size + _MAC_BYTES or _encoded(raw) != token:
        return None
    event_bytes, subscription_bytes, expires_at = _LAYOUT.unpack(raw[: _LAYOUT.size])
    return Link(
        uuid.UUID(bytes=event_bytes),
        uuid.UUID(bytes=subscription_bytes),
        expires_at,
        raw[_LAYOUT.size :],
    )


def _encoded(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _mac(stored_secret: str, fields: bytes) -> bytes:
    key = hashlib.sha256(_PURPOSE + stored_secret.encode()).digest()
    return hmac.new(key, fields, hashlib.sha256).digest()[:_MAC_BYTES]
