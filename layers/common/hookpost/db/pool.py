"""One connection pool per process, opened on first use."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from hookpost.config import get_settings

_pool: ConnectionPool | None = None
_lock = threading.Lock()


class DatabaseUnavailable(Exception):
    """PostgreSQL could not be reached; the request may be retried."""


def connection_kwargs() -> dict:
    settings = get_settings()
    return {
        # Autocommit: a single statement needs no BEGIN/COMMIT round trips; multi-statement
        # work opens an explicit transaction.
        "autocommit": True,
        "row_factory": dict_row,
        "prepare_threshold": 5 if settings.prepare_statements else None,
        "connect_timeout": max(1, int(settings.connect_timeout_s)),
    }


def get_pool() -> ConnectionPool:
    global _pool
    if _pool is None:
        with _lock:
            if _pool is None:
                settings = get_settings()
                if not settings.database_url:
                    raise DatabaseUnavailable("DATABASE_URL is not set")
                _pool = ConnectionPool(
                    settings.database_url,
                    min_size=1,
                    max_size=settings.pool_max_size,
                    kwargs=connection_kwargs(),
                    timeout=settings.connect_timeout_s,
                    open=True,
                    name="hookpost",
                )
    return _pool


def close_pool() -> None:
    global _pool
    with _lock:
        if _pool is not None:
            _pool.close()
            _pool = None


@contextmanager
def connection() -> Iterator[psycopg.Connection]:
    """A pooled autocommit connection; unreachable databases surface as DatabaseUnavailable."""
    try:
        with get_pool().connection() as conn:
            yield conn
    except (psycopg.OperationalError, PoolTimeout) as exc:
        raise DatabaseUnavailable(str(exc)) from exc
