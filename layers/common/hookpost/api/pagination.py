"""Opaque cursors over a stable sort key: `{"data": [...], "next_cursor": ...}`."""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Any

from hookpost.errors import Invalid

_NOT_A_CURSOR = "not a cursor returned by this API"


def encode_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if cursor is None or cursor == "":
        return None
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Invalid.field("cursor", _NOT_A_CURSOR) from None


def decode_id_cursor(cursor: str | None) -> uuid.UUID | None:
    value = decode_cursor(cursor)
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Invalid.field("cursor", _NOT_A_CURSOR) from None


def page(rows: list[dict[str, Any]], limit: int, key: str = "id") -> dict[str, Any]:
    """Rows were fetched with LIMIT limit + 1: the extra row only says another page exists."""
    more = len(rows) > limit
    data = rows[:limit]
    return {"data": data, "next_cursor": encode_cursor(data[-1][key]) if more else None}
