"""refresh_views: the hourly rollup after deliveries, what it recomputes, and a day's roll-up."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from hookpost.db import queries
from hookpost.jobs import run_once
from hookpost.jobs.refresh_views import LATE_MARGIN
from support_jobs import insert_attempt, insert_event


@pytest.fixture
def day() -> datetime:
    """Midnight UTC three days ago: its hours are all final."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=3)


def set_refreshed_at(db: psycopg.Connection, at: datetime) -> None:
    db.execute(
        "INSERT INTO stats_refresh (refreshed_at) VALUES (%(at)s)"
        " ON CONFLICT (singleton) DO UPDATE SET refreshed_at = excluded.refreshed_at",
        {"at": at},
    )


def refresh_from(db: psycopg.Connection, at: datetime) -> dict[str, int]:
    """Run the job as if the previous refresh had happened at `at`."""
    set_refreshed_at(db, at)
    return run_once("refresh_views").counts


def hourly(db: psycopg.Connection, application_id: str) -> dict[datetime, dict]:
    rows = db.execute(
        "SELECT hour, events, succeeded, failed, gave_up, p50_ms, p95_ms FROM stats_hourly"
        " WHERE application_id = %s ORDER BY hour",
        (application_id,),
    ).fetchall()
    return {row.pop("hour"): row for row in rows}


def deliveries(db, tenant, subscription, at: datetime, succeeded=(), failed=0, gave_up=0):
    """One event per attempt, accepted and finished at `at`."""
    for status, elapsed in (
        [("succeeded", ms) for ms in succeeded]
        + [("failed", 5000)] * failed
        + [("gave_up", 15000)] * gave_up
    ):
        event = insert_event(db, tenant.id, at)
        insert_attempt(db, event, subscription["id"], status, finished_at=at, elapsed_ms=elapsed)


def test_counts_and_exact_percentiles_per_hour(db, tenant, other_tenant, day):
    subscription = tenant.subscription()
    ten, eleven = day + timedelta(hours=10), day + timedelta(hours=11)
    deliveries(db, tenant, subscription, ten + timedelta(minutes=5), [40, 10, 1000, 30, 20], 2, 1)
    deliveries(db, tenant, subscription, eleven + timedelta(minutes=59), [200, 100])
    # Still pending or in flight: not finished, so not counted as attempts.
    pending_event = insert_event(db, tenant.id, eleven)
    insert_attempt(db, pending_event, subscription["id"], "pending")
    other = other_tenant.subscription()
    deliveries(db, other_tenant, other, ten, [5000])

    counts = refresh_from(db, day)

    assert counts["stats_buckets_written"] >= 3
    assert hourly(db, tenant.id) == {
        ten: {"events": 8, "succeeded": 5, "failed": 2, "gave_up": 1, "p50_ms": 30, "p95_ms": 1000},
        eleven: {
            "events": 3,
            "succeeded": 2,
            "failed": 0,
            "gave_up": 0,
            "p50_ms": 100,
            "p95_ms": 200,
        },
    }
    assert hourly(db, other_tenant.id)[ten]["p50_ms"] == 5000


def test_only_recent_hours_are_recomputed(db, tenant, day):
    subscription = tenant.subscription()
    old = day + timedelta(hours=3)
    deliveries(db, tenant, subscription, old, [50])
    refresh_from(db, day)
    # A row that turns up in an old, final hour is not read again: the refresh starts from the
    # hour of the previous one, so its cost does not grow with the history behind it.
    deliveries(db, tenant, subscription, old, [60])
    now = datetime.now(UTC)
    recent = now - timedelta(minutes=1)
    deliveries(db, tenant, subscription, recent, [70])

    counts = refresh_from(db, now)

    assert counts["stats_hours_refreshed"] <= 2  # the current hour, and the one before near :00
    stats = hourly(db, tenant.id)
    assert stats[old]["succeeded"] == 1
    assert stats[recent.replace(minute=0, second=0, microsecond=0)]["succeeded"] == 1


def test_a_row_committed_late_is_counted_by_the_next_refresh(db, tenant):
    subscription = tenant.subscription()
    run_once("refresh_views")
    # Finished just before the previous refresh began, but committed after it.
    (refreshed_at,) = db.execute("SELECT refreshed_at FROM stats_refresh").fetchone().values()
    at = refreshed_at - LATE_MARGIN / 2
    deliveries(db, tenant, subscription, at, [80])

    run_once("refresh_views")

    assert hourly(db, tenant.id)[at.replace(minute=0, second=0, microsecond=0)]["p50_ms"] == 80


def test_catching_up_goes_a_day_at_a_time(db, tenant, day):
    subscription = tenant.subscription()
    deliveries(db, tenant, subscription, day + timedelta(hours=1), [1])
    deliveries(db, tenant, subscription, day + timedelta(days=2, hours=1), [2])

    counts = refresh_from(db, day + LATE_MARGIN)

    hours = (datetime.now(UTC) - day) // timedelta(hours=1) + 1
    assert counts["stats_hours_refreshed"] == hours
    assert len(hourly(db, tenant.id)) == 2
    (refreshed_at,) = db.execute("SELECT refreshed_at FROM stats_refresh").fetchone().values()
    assert refreshed_at > datetime.now(UTC) - timedelta(minutes=1)


def test_a_stop_leaves_the_rest_to_the_next_run(db, day):
    set_refreshed_at(db, day)
    stopped = threading.Event()
    stopped.set()

    counts = run_once("refresh_views", stopped).counts

    assert counts["stats_hours_refreshed"] == 0
    (refreshed_at,) = db.execute("SELECT refreshed_at FROM stats_refresh").fetchone().values()
    assert refreshed_at == day


def test_a_refresh_under_way_elsewhere_is_not_repeated(db, database_url):
    with psycopg.connect(database_url, autocommit=True) as other, other.transaction():
        assert other.execute(queries.STATS_REFRESH_LOCK).fetchone()[0]
        counts = run_once("refresh_views").counts
    assert counts["stats_refresh_skipped"] == 1
    assert counts["stats_buckets_written"] == 0
