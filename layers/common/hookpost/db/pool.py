"""One connection pool per process, opened on first use."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from hookpost.config import database_url, get_settings

log = logging.getLogger(__name__)

_pool: ConnectionPool | None = None
_lock = threading.Lock()


class DatabaseUnavailable(Exception):
    """PostgreSQL could not be reached; the request may be retried."""


def refused_authentication(exc: psycopg.OperationalError) -> bool:
    """Whether PostgreSQL (or RDS Proxy) refused the credentials. libpq reports a refusal at
    connection time with no SQLSTATE, only the server's message."""
    return "authentication failed" in str(exc)


class CredentialedConnection(psycopg.Connection):
    """A connection that, when refused for authentication, reads the credentials again (on AWS
    from their secret: it was rotated) and tries once more if they changed. So a rotated password
    needs no restart, and no container keeps failing on what it read at its start."""

    @classmethod
    def connect(cls, conninfo: str = "", **kwargs: Any) -> CredentialedConnection:
        try:
            return super().connect(conninfo, **kwargs)
        except psycopg.OperationalError as exc:
            fresh = database_url(refresh=True) if refused_authentication(exc) else conninfo
            if fresh == conninfo:
                raise
        log.warning("PostgreSQL refused the credentials; connecting with those read again")
        return super().connect(fresh, **kwargs)


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
                    # Called for each new connection: credentials read again after a refusal
                    # serve the connections that follow.
                    lambda: database_url(),
                    connection_class=CredentialedConnection,
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
