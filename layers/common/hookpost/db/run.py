"""Running the named queries of `hookpost.db.queries` on a pooled connection."""

from __future__ import annotations

from typing import Any

from hookpost.db.pool import connection


def fetch_one(query: str, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
    with connection() as conn:
        return conn.execute(query, params).fetchone()


def fetch_all(query: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    with connection() as conn:
        return conn.execute(query, params).fetchall()
