"""Ordered plain-SQL migrations, each applied once in its own transaction and recorded."""

from __future__ import annotations

import logging
from importlib import resources

import psycopg

from hookpost.db import queries

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same for every process that migrates.
_MIGRATION_LOCK_KEY = 7_210_342_118


def migration_files() -> list[tuple[str, str]]:
    folder = resources.files("hookpost.db") / "migrations"
    files = sorted(f for f in folder.iterdir() if f.name.endswith(".sql"))
    return [(f.name.removesuffix(".sql"), f.read_text()) for f in files]


def migrate(database_url: str) -> list[str]:
    """Apply pending migrations; returns the versions applied. Safe to run concurrently."""
    applied: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        # A session lock: a second process waits here, then finds nothing left to do.
        conn.execute(queries.MIGRATIONS_LOCK, {"key": _MIGRATION_LOCK_KEY})
        try:
            conn.execute(queries.MIGRATIONS_TABLE)
            done = {row[0] for row in conn.execute(queries.MIGRATIONS_APPLIED)}
            for version, sql in migration_files():
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(sql)
                    conn.execute(queries.MIGRATION_RECORD, {"version": version})
                log.info("applied migration %s", version)
                applied.append(version)
        finally:
            conn.execute(queries.MIGRATIONS_UNLOCK, {"key": _MIGRATION_LOCK_KEY})
    return applied
