"""How jobs are started outside Lambda: `hookpost job NAME`, and `make dev`'s periodic thread."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

from hookpost.cli import main
from hookpost.jobs.periodic import run_periodically
from support_jobs import insert_attempt, insert_event


def test_hookpost_job_runs_one_once(database_url, capsys):
    assert main(["job", "refresh_views"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["job"] == "refresh_views"
    assert report["counts"]["stats_hours_refreshed"] >= 1


class StopWhenIdle(threading.Event):
    """A stop event that is set as soon as the schedule first waits for its next job."""

    def wait(self, timeout: float | None = None) -> bool:
        self.set()
        return True


def test_dev_runs_every_job_at_start_then_stops(db, tenant, env):
    env(HOOKPOST_CLEANUP_EVERY_S="0")  # never
    subscription = tenant.subscription()
    event = insert_event(db, tenant.id, datetime.now(UTC))
    stale = insert_attempt(
        db, event, subscription["id"], "in_flight", lease_expires_at=datetime.now(UTC)
    )
    db.execute("DELETE FROM stats_refresh")

    run_periodically(StopWhenIdle())

    status = db.execute("SELECT status::text FROM attempts WHERE id = %s", (stale,)).fetchone()
    assert status["status"] == "pending"
    refreshed = db.execute("SELECT refreshed_at FROM stats_refresh").fetchone()
    assert refreshed["refreshed_at"] > datetime.now(UTC) - timedelta(minutes=1)
    db.execute("UPDATE attempts SET status = 'failed' WHERE id = %s", (stale,))


def test_a_stop_before_the_start_runs_nothing(db):
    stop = threading.Event()
    stop.set()
    db.execute("DELETE FROM stats_refresh")

    run_periodically(stop)

    assert db.execute("SELECT refreshed_at FROM stats_refresh").fetchone() is None
