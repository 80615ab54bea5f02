"""One connection pool per process, opened on first use, and what the process knows of whether
PostgreSQL can be reached.

A connection that cannot be made (PostgreSQL stopped, restarting, failing over) marks the
database lost for the whole process, at once: the pool is closed, so that whoever waits for one
of its connections fails now rather than after the connect timeout, and until a probe connects
again `connection()` raises DatabaseUnavailable without trying anything, in microseconds. One
probe at a time runs in a background thread, a try every PROBE_EVERY_S, each given at most
PROBE_TIMEOUT_S, so a check starts at least once a second and connection waits never stack up.
When a probe's query succeeds, the next use makes a new pool: nothing waits out an old pool's
reconnect back-off (1 s doubling, in psycopg_pool), and every process serves again within about
a second of PostgreSQL answering.

A pooled connection whose socket has something to read while idle (a server that ended it, in a
restart, a failover or the proxy's idle timeout, has said so or hung up) is checked with a round
trip before it is handed out, and replaced when broken; an idle connection with nothing to read
costs no round trip.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import select
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from hookpost.config import database_url, get_settings
from hookpost.db import queries

log = logging.getLogger(__name__)

# A probe starts at least this often while the database is lost, and gives up after the
# timeout (libpq's own connect timeout cannot be under 2 s, hence asyncio's).
PROBE_EVERY_S = 0.5
PROBE_TIMEOUT_S = 1.0

_pool: ConnectionPool | None = None
_lock = threading.Lock()


class DatabaseUnavailable(Exception):
    """PostgreSQL could not be reached; the request may be retried."""


@dataclass
class _Reachability:
    """What this process last learnt of the database (times on the monotonic clock)."""

    # Since when no connection could be made; None while the database is reachable.
    lost_at: float | None = None
    error: str = ""
    # When a statement or a probe last succeeded, and when a health check last failed.
    seen_at: float = -math.inf
    failed_check_at: float = -math.inf


_state = _Reachability()
_state_lock = threading.Lock()
_probe_lock = threading.Lock()
_prober: threading.Thread | None = None


def refused_authentication(exc: psycopg.OperationalError) -> bool:
    """Whether PostgreSQL (or RDS Proxy) refused the credentials. libpq reports a refusal at
    connection time with no SQLSTATE, only the server's message."""
    return "authentication failed" in str(exc)


class CredentialedConnection(psycopg.Connection):
    """The pool's connections. When refused for authentication, one reads the credentials again
    (on AWS from their secret: it was rotated) and tries once more if they changed, so a rotated
    password needs no restart. When it cannot connect for any other reason, the database is
    lost for the whole process (see the module's note)."""

    @classmethod
    def connect(cls, conninfo: str = "", **kwargs: Any) -> CredentialedConnection:
        try:
            return cls._connect_with_fresh_credentials(conninfo, **kwargs)
        except psycopg.OperationalError as exc:
            if not refused_authentication(exc):
                _lost(exc)
            raise

    @classmethod
    def _connect_with_fresh_credentials(
        cls, conninfo: str, **kwargs: Any
    ) -> CredentialedConnection:
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
            _raise_if_lost()
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
    """Close the pool and forget what was learnt of the database (a new URL may follow)."""
    global _pool, _state
    with _lock:
        pool, _pool = _pool, None
        with _state_lock:
            _state = _Reachability()
    if pool is not None:
        pool.close()


@contextmanager
def connection() -> Iterator[psycopg.Connection]:
    """A pooled autocommit connection; an unreachable database surfaces as DatabaseUnavailable,
    at once while it is known to be lost."""
    _raise_if_lost()
    try:
        pool = get_pool()
        conn = _checked_out(pool)
        try:
            with conn:
                yield conn
        finally:
            pool.putconn(conn)
    except psycopg.OperationalError as exc:  # PoolTimeout and PoolClosed too
        raise DatabaseUnavailable(str(exc)) from exc
    _state.seen_at = time.monotonic()


def _checked_out(pool: ConnectionPool) -> psycopg.Connection:
    """A connection of the pool that works, as far as one round trip can tell when its socket
    says something changed. Not the pool's own `check`: after a failed check it sleeps (1 s,
    doubling) before trying the next connection, which is what a restart leaves in the pool."""
    while True:
        conn = pool.getconn()
        try:
            if not conn.closed and not select.select([conn.fileno()], [], [], 0)[0]:
                return conn
            ConnectionPool.check_connection(conn)
            return conn
        except psycopg.Error:
            conn.close()  # the pool replaces it; the next is checked in the same way
            pool.putconn(conn)


# Reachability


def _raise_if_lost() -> None:
    lost_at = _state.lost_at
    if lost_at is not None:
        raise DatabaseUnavailable(
            f"PostgreSQL unreachable for {time.monotonic() - lost_at:.0f} s ({_state.error});"
            f" checked again every {PROBE_EVERY_S:g} s"
        )


def _lost(exc: Exception) -> None:
    """A connection could not be made: close the pool and probe until one can."""
    global _pool, _prober
    with _state_lock:
        first = _state.lost_at is None
        if first:
            _state.lost_at = time.monotonic()
            _state.error = _one_line(exc)
        if _prober is None:
            _prober = threading.Thread(
                target=_probe_until_found, name="hookpost-db-probe", daemon=True
            )
            _prober.start()
    if not first:
        return
    log.warning("PostgreSQL unreachable (%s): answering 503 until a probe connects", _state.error)
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        # In a thread of its own: this may run in one of the pool's workers, which close()
        # waits for. Its waiting clients fail with PoolClosed; connections in use are closed
        # when given back.
        threading.Thread(target=pool.close, name="hookpost-pool-close", daemon=True).start()


def _probe_until_found() -> None:
    global _prober
    while True:
        with _state_lock:  # as _lost decides whether to start a prober
            if _state.lost_at is None:
                _prober = None
                return
        started = time.monotonic()
        if probe():
            continue
        time.sleep(max(0.0, PROBE_EVERY_S - (time.monotonic() - started)))


def probe() -> bool:
    """One live check outside the pool, one at a time per process: connect and run the health
    query, within PROBE_TIMEOUT_S. Success (or a refusal of the credentials, which only a
    reachable server makes) ends a loss."""
    with _probe_lock:
        try:
            asyncio.run(asyncio.wait_for(_connect_and_query(), PROBE_TIMEOUT_S))
        except psycopg.OperationalError as exc:
            if not refused_authentication(exc):
                _state.error = _one_line(exc)
                return False
        except (TimeoutError, OSError, psycopg.Error) as exc:
            _state.error = _one_line(exc) or f"no answer within {PROBE_TIMEOUT_S:g} s"
            return False
        with _state_lock:
            lost_at, _state.lost_at = _state.lost_at, None
            _state.seen_at = time.monotonic()
        if lost_at is not None:
            log.warning("PostgreSQL reachable again after %.1f s", time.monotonic() - lost_at)
        return True


async def _connect_and_query() -> None:
    kwargs = {**connection_kwargs(), "prepare_threshold": None}
    async with await psycopg.AsyncConnection.connect(database_url(), **kwargs) as conn:
        await conn.execute(queries.HEALTH_CHECK)


def reachable(max_age_s: float) -> bool:
    """Whether PostgreSQL answers, as this process knows it at most `max_age_s` ago: no query
    while it is lost, nor when a statement succeeded (or a check failed) that recently;
    otherwise one health query."""
    if _state.lost_at is not None:
        return False
    now = time.monotonic()
    if now - _state.seen_at <= max_age_s:
        return True
    if now - _state.failed_check_at <= max_age_s:
        return False
    found = check_live()
    if not found:
        _state.failed_check_at = now
    return found


def check_live() -> bool:
    """Whether PostgreSQL answers now: the health query on a pooled connection, or while the
    database is lost a probe (which ends the loss when it succeeds)."""
    if _state.lost_at is not None:
        return probe()
    try:
        with connection() as conn:
            conn.execute(queries.HEALTH_CHECK)
    except DatabaseUnavailable:
        return False
    return True


def _one_line(exc: Exception) -> str:
    """An error as one line of a log or a 503's cause (libpq's messages span several)."""
    return " ".join(str(exc).split())


def _forget_in_child() -> None:
    """A forked process (an API worker of `make dev`) has none of its parent's threads: it
    starts with no pool and no probe of its own."""
    global _pool, _lock, _state, _state_lock, _probe_lock, _prober
    _pool, _prober = None, None
    _lock, _state_lock, _probe_lock = threading.Lock(), threading.Lock(), threading.Lock()
    _state = _Reachability()


os.register_at_fork(after_in_child=_forget_in_child)
