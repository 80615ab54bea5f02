"""Jobs and stats test support: rows written straight into the tables, at chosen times, the way
the ingest and the delivery engine leave them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import psycopg
from psycopg.rows import dict_row

from hookpost.ids import uuid7


@contextmanager
def connect(url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        yield conn


def uuid7_at(when: datetime) -> uuid.UUID:
    """A UUIDv7 made at `when`, as the ingest would have made it then."""
    millis = int(when.timestamp() * 1000)
    return uuid.UUID(int=(uuid7().int & ((1 << 80) - 1)) | millis << 80)


def insert_event(db: psycopg.Connection, application_id: str, created_at: datetime) -> uuid.UUID:
    event_id = uuid7_at(created_at)
    db.execute(
        "INSERT INTO events (id, application_id, event_id, event_type, payload, occurred_at,"
        " attempts_created, created_at)"
        " VALUES (%(id)s, %(app)s, %(key)s, 'invoice.paid', '{}', %(at)s, 1, %(at)s)",
        {"id": event_id, "app": application_id, "key": str(event_id), "at": created_at},
    )
    return event_id


def insert_attempt(
    db: psycopg.Connection,
    event_id: uuid.UUID,
    subscription_id: str,
    status: str,
    *,
    finished_at: datetime | None = None,
    elapsed_ms: int | None = None,
    lease_expires_at: datetime | None = None,
) -> uuid.UUID:
    """An attempt of the event, with its application's id, in the given state."""
    row = db.execute(
        "INSERT INTO attempts (application_id, event_id, subscription_id, status, finished_at,"
        " elapsed_ms, claimed_by, lease_expires_at, created_at)"
        " SELECT application_id, id, %(sub)s, %(status)s::attempt_status, %(finished_at)s,"
        " %(elapsed_ms)s::integer,"
        " CASE WHEN %(status)s::attempt_status = 'in_flight' THEN gen_random_uuid() END,"
        " %(lease)s::timestamptz, created_at"
        " FROM events WHERE id = %(event)s RETURNING id",
        {
            "event": event_id,
            "sub": subscription_id,
            "status": status,
            "finished_at": finished_at,
            "elapsed_ms": elapsed_ms,
            "lease": lease_expires_at,
        },
    ).fetchone()
    return row["id"]


def hour_floor(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
