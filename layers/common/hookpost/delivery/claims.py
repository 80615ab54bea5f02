"""The deliver loop's statements: claim a leased batch, record a batch of outcomes, release,
and recover expired leases. Each is one statement in a transaction of its own: none is ever
open while a request is on the wire."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from hookpost.db import queries

# Recovery works in bounded statements so that a huge number of expired leases (a fleet of
# workers died) never makes one long transaction.
_RECOVER_CHUNK = 5000


@contextmanager
def _async_commit(conn: psycopg.Connection) -> Iterator[None]:
    """A transaction that commits without waiting for the WAL flush (see DELIVERY_ASYNC_COMMIT);
    pipelined, so BEGIN, SET LOCAL and the statement cost one round trip."""
    with conn.pipeline(), conn.transaction():
        conn.execute(queries.DELIVERY_ASYNC_COMMIT)
        yield


def claim(conn: psycopg.Connection, claim_id: uuid.UUID, limit: int, lease_s: float) -> list[dict]:
    """Lease up to `limit` due attempts to `claim_id`, oldest due first.

    Rows with status `in_flight` are to be sent; `gave_up` ones (their subscription is
    disabled) were settled by the claim itself.
    """
    with _async_commit(conn):
        return conn.execute(
            queries.DELIVERY_CLAIM, {"claim_id": claim_id, "limit": limit, "lease_s": lease_s}
        ).fetchall()


def record(conn: psycopg.Connection, results: list[dict[str, Any]]) -> dict[str, int]:
    """Write outcomes (keys as in DELIVERY_RECORD's recordset) in one statement; returns how
    many were recorded per status. Results whose claim no longer holds the attempt are
    dropped: the attempt was claimed again after its lease expired."""
    with _async_commit(conn):
        rows = conn.execute(
            queries.DELIVERY_RECORD, {"results": json.dumps(results, default=str)}
        ).fetchall()
    return {row["status"]: row["count"] for row in rows}


def release(
    conn: psycopg.Connection, claim_ids: list[uuid.UUID], attempt_ids: list[uuid.UUID]
) -> int:
    """Hand back claimed attempts that were not sent; they are due again at once."""
    cursor = conn.execute(queries.DELIVERY_RELEASE, {"ids": attempt_ids, "claim_ids": claim_ids})
    return cursor.rowcount


def recover_expired_leases(conn: psycopg.Connection) -> int:
    """Return in-flight attempts whose lease expired (their worker died) to pending, to be
    delivered again; returns how many. Safe to run from any number of processes at once."""
    recovered = 0
    while True:
        count = conn.execute(queries.DELIVERY_RECOVER_LEASES, {"limit": _RECOVER_CHUNK}).rowcount
        recovered += count
        if count < _RECOVER_CHUNK:
            return recovered
