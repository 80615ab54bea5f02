"""The deliver loop's statements: claim a leased batch, record a batch of outcomes, release,
recover expired leases, end expired attempts. Each is one statement (or one pipelined round trip)
in a transaction of its own: none is ever open while a request is on the wire. `on_pool` runs one
from the event loop."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any, TypeVar

import psycopg
from pydantic_core import to_json

from hookpost.config import CircuitSettings
from hookpost.db import queries
from hookpost.db.pool import connection
from hookpost.operational import RECORD_NAMES

T = TypeVar("T")

# Recovery and expiry work in bounded statements so that a huge number of rows (a fleet of
# workers died, a held backlog expired) never makes one long transaction.
_RECOVER_CHUNK = 5000


@contextmanager
def _async_commit(conn: psycopg.Connection) -> Iterator[None]:
    """Statements that commit together without waiting for the WAL flush (see
    DELIVERY_ASYNC_COMMIT), in one round trip: pipelined in autocommit, they are one implicit
    transaction that the pipeline's one Sync, on leaving the block, commits. Their results are
    read after the block."""
    with conn.pipeline():
        conn.execute(queries.DELIVERY_ASYNC_COMMIT)
        yield


async def on_pool(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run fn(conn, *args, **kwargs) on a pooled connection in a worker thread, so that the event
    loop and the requests on it never wait for the database."""

    def call() -> T:
        with connection() as conn:
            return fn(conn, *args, **kwargs)

    return await asyncio.to_thread(call)


@dataclass(frozen=True)
class NothingReady:
    """No subscription is waiting for its turn: only a NOTIFY or the poll brings work."""


@dataclass(frozen=True)
class ReadyNow:
    """A subscription's turn has come, yet the claim left it: the claiming loop holds its share,
    or the subscription's limits (max_in_flight, a key in order) hold it until an answer."""


@dataclass(frozen=True)
class ReadyIn:
    """The next subscription's turn comes in `seconds` (> 0): a rate, a Retry-After or a
    circuit's probe holds it until then, and no NOTIFY will say so."""

    seconds: float


NextReady = NothingReady | ReadyNow | ReadyIn


def next_ready(in_s: float | Decimal | None) -> NextReady:
    """The hint from DELIVERY_NEXT_READY's seconds until the earliest ready_at (None: none)."""
    if in_s is None:
        return NothingReady()
    seconds = float(in_s)
    return ReadyIn(seconds) if seconds > 0 else ReadyNow()


@dataclass(frozen=True)
class Claimed:
    """A claim's attempts, and when another subscription is ready."""

    attempts: list[dict[str, Any]]
    next_ready: NextReady


def claim(
    conn: psycopg.Connection,
    claim_id: uuid.UUID,
    limit: int,
    lease_s: float,
    *,
    share: int | None = None,
    holding: dict[uuid.UUID, int] | None = None,
) -> Claimed:
    """Lease up to `limit` due attempts to `claim_id`, shared fairly among subscriptions; the
    caller holds `holding` attempts of each subscription and may hold `share` of any one.

    Rows with status `in_flight` are to be sent; `gave_up` (their subscription is disabled)
    and `expired` ones were settled by the claim itself.
    """
    params = {
        "claim_id": claim_id,
        "limit": limit,
        "lease_s": lease_s,
        "share": limit if share is None else share,
        "holding": json.dumps({str(k): v for k, v in (holding or {}).items()}),
    }
    with _async_commit(conn):
        claimed = conn.execute(queries.DELIVERY_CLAIM, params)
        ready = conn.execute(queries.DELIVERY_NEXT_READY)
    return Claimed(claimed.fetchall(), next_ready(ready.fetchone()["in_s"]))


def record(
    conn: psycopg.Connection, results: list[dict[str, Any]], circuit: CircuitSettings
) -> dict[str, int]:
    """Write outcomes (rows as `recorder.Result.row()` makes them) in one statement; returns how
    many were recorded per status. Results whose claim no longer holds the attempt are
    dropped: the attempt was claimed again after its lease expired."""
    with _async_commit(conn):
        recorded = conn.execute(
            queries.DELIVERY_RECORD,
            {
                # pydantic_core's encoder writes the UUIDs itself: json.dumps called back into
                # Python (default=str) for two of them a row, six times as slow in all.
                "results": to_json(results).decode(),
                # hookpost_record raises operational events by these names.
                "circuit": json.dumps({**asdict(circuit), "operational": RECORD_NAMES}),
            },
        )
    return {row["status"]: row["count"] for row in recorded.fetchall()}


def resync_ready(conn: psycopg.Connection) -> int:
    """Make ready every subscription with an attempt due before its place in the claim queue
    says (see DELIVERY_RESYNC_READY); returns how many were behind."""
    return conn.execute(queries.DELIVERY_RESYNC_READY).rowcount


def expire(conn: psycopg.Connection) -> int:
    """End pending attempts whose event expired (held ones too); returns how many."""
    return _in_chunks(conn, queries.DELIVERY_EXPIRE)


def release(
    conn: psycopg.Connection, claim_ids: list[uuid.UUID], attempt_ids: list[uuid.UUID]
) -> int:
    """Hand back claimed attempts that were not sent; they are due again at once."""
    cursor = conn.execute(queries.DELIVERY_RELEASE, {"ids": attempt_ids, "claim_ids": claim_ids})
    return cursor.rowcount


def recover_expired_leases(conn: psycopg.Connection) -> int:
    """Return in-flight attempts whose lease expired (their worker died) to pending, to be
    delivered again; returns how many. Safe to run from any number of processes at once."""
    return _in_chunks(conn, queries.DELIVERY_RECOVER_LEASES)


def _in_chunks(conn: psycopg.Connection, statement: str) -> int:
    """Run a statement that changes up to %(limit)s rows until it changes fewer; the total."""
    total = 0
    while True:
        count = conn.execute(statement, {"limit": _RECOVER_CHUNK}).rowcount
        total += count
        if count < _RECOVER_CHUNK:
            return total
