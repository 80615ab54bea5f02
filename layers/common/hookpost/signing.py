"""Standard Webhooks secrets and signatures (`whsec_` secrets, `v1,` HMAC-SHA256 signatures)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from functools import lru_cache

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The raw HMAC key of a `whsec_` secret; ValueError when it is not one we accept."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"must start with {SECRET_PREFIX}")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        raise ValueError("must be whsec_ followed by base64") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(f"must encode {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes")
    return key


@lru_cache(maxsize=4096)
def _keyed(key: bytes) -> hmac.HMAC:
    """HMAC-SHA256 keyed with `key`, fed nothing yet. A copy of it signs without deriving the
    key's inner and outer pads again, which was a third of the cost of a signature."""
    return hmac.new(key, digestmod=hashlib.sha256)


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature of `{id}.{timestamp}.{body}`."""
    mac = _keyed(key).copy()
    mac.update(b"%s.%d." % (msg_id.encode(), timestamp))
    mac.update(body)
    return "v1," + base64.b64encode(mac.digest()).decode()


def signature_header(keys: list[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one signature per valid secret, space separated."""
    return " ".join(sign(key, msg_id, timestamp, body) for key in keys)
