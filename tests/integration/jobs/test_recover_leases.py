"""recover_leases: an attempt whose worker died goes back to pending once its lease expires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hookpost.jobs import run_once
from support_jobs import insert_attempt, insert_event


def test_an_expired_lease_goes_back_to_pending_and_a_live_one_stays(db, tenant):
    subscription = tenant.subscription()
    now = datetime.now(UTC)
    event = insert_event(db, tenant.id, now)
    stale = insert_attempt(
        db, event, subscription["id"], "in_flight", lease_expires_at=now - timedelta(minutes=1)
    )
    live = insert_attempt(
        db, event, subscription["id"], "in_flight", lease_expires_at=now + timedelta(minutes=10)
    )

    waiting = insert_attempt(db, event, subscription["id"], "pending")
    db.execute(
        "UPDATE attempts SET due_at = now() - interval '2 minutes' WHERE id = %s", (waiting,)
    )

    report = run_once("recover_leases")

    assert report.counts["leases_recovered"] >= 1
    rows = db.execute(
        "SELECT id, status::text, lease_expires_at FROM attempts WHERE id = ANY(%s)",
        ([stale, live],),
    ).fetchall()
    by_id = {row["id"]: row for row in rows}
    assert by_id[stale]["status"] == "pending"
    assert by_id[stale]["lease_expires_at"] is None
    assert by_id[live]["status"] == "in_flight"
    # The recovered attempt is due: the backlog counts it. Off AWS no deliver run is woken.
    assert report.counts["backlog_depth"] >= 1
    assert report.counts["deliver_runs_woken"] == 0
    # And how long its oldest attempt has waited (OldestDueAgeSeconds, an alarm's metric).
    assert report.counts["oldest_due_age_seconds"] >= 120
    # Nothing is left for a later test's deliver loop to pick up.
    db.execute(
        "UPDATE attempts SET status = 'failed' WHERE id = ANY(%s)", ([stale, live, waiting],)
    )
