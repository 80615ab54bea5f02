"""Running the named queries of `hookpost.db.queries` on a pooled connection."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hookpost.db.pool import connection


def fetch_one(query: str, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
    with connection() as conn:
        return conn.execute(query, params).fetchone()


def fetch_all(query: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    with connection() as conn:
        return conn.execute(query, params).fetchall()


def array_literal(values: Iterable[object]) -> str:
    """A PostgreSQL array literal of `values`' text, each element quoted, for a parameter the
    statement casts (`%(keys)s::text[]`). psycopg works out a list's element type and array type
    on every call: for the three short arrays of the rate-limit buckets that was about 170,000
    instructions, a sixth of a single-event ingest (callgrind)."""
    return "{" + ",".join(map(_quoted, values)) + "}"


def _quoted(value: object) -> str:
    text = str(value)
    if "\\" in text or '"' in text:
        text = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
