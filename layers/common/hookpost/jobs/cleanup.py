"""cleanup: deletes events past their application's retention_days with their attempts, clears
rotated-out secrets once they expire, deletes expired portal sessions and API keys that expired
more than a day ago, and drops rate-limit buckets that have refilled.

Events go in batches of HOOKPOST_CLEANUP_BATCH_SIZE, each its own short transaction (row locks
on one batch only, plain deletes: no table rewrite), for up to HOOKPOST_CLEANUP_BUDGET_S a run.
An event with an attempt still pending or in flight stays, whatever its age.
HOOKPOST_CLEANUP_DRY_RUN=true counts what would go and changes nothing.
"""

from __future__ import annotations

import threading
import time

import psycopg

from hookpost.config import Settings
from hookpost.db import queries


def run(conn: psycopg.Connection, settings: Settings, stop: threading.Event) -> dict[str, int]:
    if settings.jobs.cleanup_dry_run:
        return dry_run(conn)
    events = attempts = 0
    deadline = time.monotonic() + settings.jobs.cleanup_budget_s
    while True:
        deleted, locked = _delete_batch(conn, settings.jobs.cleanup_batch_size)
        events += deleted["events"]
        attempts += deleted["attempts"]
        nothing_left = locked < settings.jobs.cleanup_batch_size
        if nothing_left or time.monotonic() >= deadline or stop.is_set():
            break
    return {
        "events_deleted": events,
        "attempts_deleted": attempts,
        "secrets_cleared": conn.execute(queries.CLEANUP_EXPIRED_SECRETS).rowcount,
        "portal_sessions_deleted": conn.execute(queries.CLEANUP_EXPIRED_PORTAL_SESSIONS).rowcount,
        "api_keys_deleted": conn.execute(queries.CLEANUP_EXPIRED_API_KEYS).rowcount,
        "rate_buckets_dropped": conn.execute(queries.CLEANUP_FULL_BUCKETS).rowcount,
    }


def dry_run(conn: psycopg.Connection) -> dict[str, int]:
    due = conn.execute(queries.CLEANUP_COUNT_DUE_EVENTS).fetchone()
    return {
        "events_due": due["events"],
        "attempts_due": due["attempts"],
        "secrets_due": conn.execute(queries.CLEANUP_COUNT_EXPIRED_SECRETS).fetchone()["secrets"],
        "portal_sessions_due": conn.execute(
            queries.CLEANUP_COUNT_EXPIRED_PORTAL_SESSIONS
        ).fetchone()["sessions"],
        "api_keys_due": conn.execute(queries.CLEANUP_COUNT_EXPIRED_API_KEYS).fetchone()["api_keys"],
        "rate_buckets_due": conn.execute(queries.CLEANUP_COUNT_FULL_BUCKETS).fetchone()["buckets"],
    }


def _delete_batch(conn: psycopg.Connection, size: int) -> tuple[dict[str, int], int]:
    """Delete one batch; returns what was deleted and how many events were locked for it."""
    with conn.transaction():
        ids = [
            row["id"]
            for row in conn.execute(queries.CLEANUP_LOCK_DUE_EVENTS, {"limit": size}).fetchall()
        ]
        if not ids:
            return {"events": 0, "attempts": 0}, 0
        return conn.execute(queries.CLEANUP_DELETE_EVENTS, {"ids": ids}).fetchone(), len(ids)
