"""Timestamps as the contract writes them: RFC 3339, UTC, with a `Z`."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
