"""Load (issue 8, item 6): 20,000 events through four deliver loops at once, each delivered
exactly once when nothing dies, with no claim error and no deadlock."""

from __future__ import annotations

import logging
import time
from collections import Counter

import psycopg

from support_delivery import delivering
from support_process import wait_for

EVENTS = 20_000


def statuses(database_url: str, application_id: str) -> Counter[str]:
    """The application's attempts by status (straight from the database: 20,000 rows would be
    100 pages of the API)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT status::text, count(*) FROM attempts WHERE application_id = %s GROUP BY status",
            (application_id,),
        ).fetchall()
    return Counter(dict(rows))


def deadlocks(database_url: str) -> int:
    """Deadlocks PostgreSQL has detected in this database (its statistics lag by a second)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return row[0]


def not_first_time(database_url: str, application_id: str) -> dict[tuple[str, str], int]:
    """Attempts that did not succeed at the first try, by (status, error)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT status::text, coalesce(error, ''), count(*) FROM attempts"
            " WHERE application_id = %s AND (status <> 'succeeded' OR try_number > 1)"
            " GROUP BY 1, 2",
            (application_id,),
        ).fetchall()
    return {(status, error): n for status, error, n in rows}


def test_four_loops_deliver_20000_events_exactly_once(
    tenant, subscribed, receiver, database_url, env, caplog
):
    # The production timeouts: on a loaded machine a try that took longer than the tests' 2 s
    # would be retried, a duplicate this test would rightly count.
    env(HOOKPOST_DELIVERY_TIMEOUT_S="15", HOOKPOST_DELIVERY_CONNECT_TIMEOUT_S="5")
    caplog.set_level(logging.INFO)
    deadlocks_before = deadlocks(database_url)
    started = time.monotonic()
    ids: list[str] = []
    with delivering(4) as workers:
        # Ingested while the loops run: claims race the inserts and each other, woken by
        # NOTIFY, as in production.
        for first in range(0, EVENTS, 500):
            events = [
                {"event_type": "invoice.paid", "payload": {"n": n}}
                for n in range(first, first + 500)
            ]
            response = tenant.post("/events/batch", {"events": events})
            assert response.status_code == 202, response.text
            ids += [result["id"] for result in response.json()["data"]]
        ingested = time.monotonic()
        wait_for(lambda: len(receiver.requests) >= EVENTS, timeout=120, what="20,000 deliveries")
        wait_for(
            lambda: not {"pending", "in_flight"} & set(statuses(database_url, tenant.id)),
            timeout=30,
            what="every outcome recorded",
        )
        delivered = time.monotonic()
    print(
        f"\n20,000 events: ingested in {ingested - started:.1f} s, all delivered and recorded"
        f" after {delivered - started:.1f} s"
    )

    assert not_first_time(database_url, tenant.id) == {}

    # Counted at the receiver: every event once, and nothing twice.
    seen = Counter(r.webhook_id for r in receiver.requests)
    assert len(ids) == len(set(ids)) == EVENTS
    assert set(seen) == set(ids)
    assert [webhook_id for webhook_id, n in seen.items() if n > 1] == []
    assert len(receiver.requests) == EVENTS

    # Every attempt claimed once, by one loop, and succeeded at the first try.
    assert statuses(database_url, tenant.id) == {"succeeded": EVENTS}
    assert sum(worker.summary.claimed for worker in workers) == EVENTS
    assert sum(worker.summary.succeeded for worker in workers) == EVENTS
    assert sum(worker.summary.recovered for worker in workers) == 0
    assert all(worker.summary.claimed > 0 for worker in workers), "a loop claimed nothing"

    # Nothing went wrong on the way: no claim or record failure, no deadlock.
    stopped = [r for r in caplog.records if r.getMessage().startswith("deliver loop stopped")]
    assert len(stopped) == 4, "the loops' logs were not captured"
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert problems == [], [r.getMessage() for r in problems]
    assert "deadlock" not in caplog.text.lower()
    assert deadlocks(database_url) == deadlocks_before
