"""cleanup: events past retention with their attempts, in batches, never one still in delivery;
the dry run; expired previous secrets, portal sessions and API keys; refilled rate-limit
buckets."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from hookpost.credentials import hash_api_key
from hookpost.jobs import run_once
from support import ADMIN
from support_jobs import connect, insert_attempt, insert_event


def ago(days: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


def existing(db, table: str, ids) -> set:
    rows = db.execute(f"SELECT id FROM {table} WHERE id = ANY(%s)", (list(ids),)).fetchall()
    return {row["id"] for row in rows}


@pytest.fixture
def week_retention(db, tenant):
    db.execute("UPDATE applications SET retention_days = 7 WHERE id = %s", (tenant.id,))
    return tenant


@pytest.fixture
def history(db, week_retention, other_tenant):
    """Events of a tenant keeping 7 days, of all ages and states, and an old one of a tenant
    keeping the default 30 days."""
    tenant = week_retention
    sub = tenant.subscription()["id"]
    events = {}
    events["done"] = insert_event(db, tenant.id, ago(10))
    attempts = [
        insert_attempt(db, events["done"], sub, "failed", finished_at=ago(10)),
        insert_attempt(db, events["done"], sub, "succeeded", finished_at=ago(10)),
    ]
    events["gave_up"] = insert_event(db, tenant.id, ago(8))
    attempts.append(insert_attempt(db, events["gave_up"], sub, "gave_up", finished_at=ago(8)))
    events["pending"] = insert_event(db, tenant.id, ago(10))
    insert_attempt(db, events["pending"], sub, "failed", finished_at=ago(10))
    insert_attempt(db, events["pending"], sub, "pending")
    events["in_flight"] = insert_event(db, tenant.id, ago(9))
    insert_attempt(db, events["in_flight"], sub, "in_flight", lease_expires_at=ago(-1 / 24))
    events["recent"] = insert_event(db, tenant.id, ago(6))
    events["other_app"] = insert_event(db, other_tenant.id, ago(10))
    yield events, attempts
    # Nothing left in delivery for later tests' deliver loops, nor due for their cleanups.
    db.execute("DELETE FROM events WHERE id = ANY(%s)", (list(events.values()),))


def test_deletes_only_what_is_due(db, history):
    events, attempts = history

    counts = run_once("cleanup").counts

    assert counts["events_deleted"] >= 2
    assert counts["attempts_deleted"] >= 3
    assert existing(db, "events", events.values()) == {
        events[k] for k in ("pending", "in_flight", "recent", "other_app")
    }
    assert existing(db, "attempts", attempts) == set()


def test_an_event_whose_retry_is_pending_stays_until_it_finishes(db, history):
    events, _ = history
    run_once("cleanup")
    assert events["pending"] in existing(db, "events", events.values())

    db.execute("UPDATE attempts SET status = 'succeeded' WHERE event_id = %s", (events["pending"],))
    run_once("cleanup")

    assert events["pending"] not in existing(db, "events", events.values())


def test_dry_run_counts_and_changes_nothing(db, history, env):
    events, attempts = history
    env(HOOKPOST_CLEANUP_DRY_RUN="true")

    due = run_once("cleanup").counts

    assert due["events_due"] >= 2 and due["attempts_due"] >= 3
    assert existing(db, "events", events.values()) == set(events.values())
    assert existing(db, "attempts", attempts) == set(attempts)

    env(HOOKPOST_CLEANUP_DRY_RUN="false")
    done = run_once("cleanup").counts

    assert (done["events_deleted"], done["attempts_deleted"]) == (
        due["events_due"],
        due["attempts_due"],
    )


def test_batches_and_their_bounds(db, week_retention, env):
    run_once("cleanup")  # whatever else was due: only these events are, below
    tenant = week_retention
    sub = tenant.subscription()["id"]
    old = [insert_event(db, tenant.id, ago(8 + i / 100)) for i in range(5)]
    for event in old:
        insert_attempt(db, event, sub, "succeeded", finished_at=ago(8))
    env(HOOKPOST_CLEANUP_BATCH_SIZE="2", HOOKPOST_CLEANUP_BUDGET_S="0")

    # No time left after the first batch: the rest waits for the next run.
    assert run_once("cleanup").counts["events_deleted"] == 2
    assert len(existing(db, "events", old)) == 3

    env(HOOKPOST_CLEANUP_BUDGET_S="60")
    # Nor after a stop (`make dev` shutting down).
    stopped = threading.Event()
    stopped.set()
    assert run_once("cleanup", stopped).counts["events_deleted"] == 2
    assert run_once("cleanup").counts["events_deleted"] == 1
    assert existing(db, "events", old) == set()


def test_expired_previous_secrets_are_cleared(db, tenant):
    expired = tenant.subscription()["id"]
    valid = tenant.subscription()["id"]
    assert tenant.post(f"/subscriptions/{expired}/rotate-secret").status_code == 200
    assert tenant.post(f"/subscriptions/{valid}/rotate-secret").status_code == 200
    db.execute(
        "UPDATE subscriptions SET previous_secret_expires_at = now() - interval '1 second'"
        " WHERE id = %s",
        (expired,),
    )

    counts = run_once("cleanup").counts

    assert counts["secrets_cleared"] >= 1
    rows = db.execute(
        "SELECT id, previous_secret, previous_secret_expires_at FROM subscriptions"
        " WHERE id = ANY(%s)",
        ([expired, valid],),
    ).fetchall()
    by_id = {str(row.pop("id")): row for row in rows}
    assert by_id[expired] == {"previous_secret": None, "previous_secret_expires_at": None}
    assert by_id[valid]["previous_secret"] is not None


def test_refilled_rate_limit_buckets_are_dropped(db):
    db.execute(
        "INSERT INTO rate_limit_buckets (key, tokens, updated_at, burst, per_s) VALUES"
        " ('ip:test-refilled', 0, now() - interval '11 seconds', 10, 1),"
        " ('ip:test-refilling', 0, now() - interval '9 seconds', 10, 1)"
    )

    counts = run_once("cleanup").counts

    assert counts["rate_buckets_dropped"] >= 1
    keys = {row["key"] for row in db.execute("SELECT key FROM rate_limit_buckets").fetchall()}
    assert "ip:test-refilled" not in keys
    assert "ip:test-refilling" in keys
    db.execute("DELETE FROM rate_limit_buckets WHERE key = 'ip:test-refilling'")


def test_an_event_getting_an_attempt_meanwhile_is_kept(db, database_url, week_retention):
    tenant = week_retention
    sub = tenant.subscription()["id"]
    event = insert_event(db, tenant.id, ago(10))
    insert_attempt(db, event, sub, "failed", finished_at=ago(10))

    # A manual retry of the old event, not yet committed while the cleanup runs.
    with connect(database_url) as retrying, retrying.transaction():
        insert_attempt(retrying, event, sub, "pending")
        run_once("cleanup")

    assert existing(db, "events", [event]) == {event}
    db.execute("DELETE FROM events WHERE id = %s", (event,))


def test_expired_portal_sessions_are_deleted(db, tenant, env):
    made = [
        tenant.post("/portal-sessions", json={"labels": {"customer": f"c{i}"}}) for i in range(2)
    ]
    assert [answer.status_code for answer in made] == [201, 201]
    expired, live = (answer.json()["id"] for answer in made)
    db.execute(
        "UPDATE portal_sessions SET expires_at = now() - interval '1 second' WHERE id = %s",
        (expired,),
    )

    env(HOOKPOST_CLEANUP_DRY_RUN="true")
    assert run_once("cleanup").counts["portal_sessions_due"] >= 1
    assert existing(db, "portal_sessions", [expired, live]) == {
        uuid.UUID(expired),
        uuid.UUID(live),
    }

    env(HOOKPOST_CLEANUP_DRY_RUN="false")
    assert run_once("cleanup").counts["portal_sessions_deleted"] >= 1
    assert existing(db, "portal_sessions", [expired, live]) == {uuid.UUID(live)}
    # Its token opens nothing, as before the cleanup.
    token = made[0].json()["token"]
    answer = tenant.api.get(
        tenant.path("/subscriptions"), headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 401


def test_api_keys_expired_over_a_day_ago_are_deleted(db, api, tenant, env):
    made = [
        api.post(tenant.path("/api-keys"), headers=ADMIN, json={"name": f"k{i}", "ttl_s": 3600})
        for i in range(3)
    ]
    assert [answer.status_code for answer in made] == [201, 201, 201]
    old, recent, live = (uuid.UUID(answer.json()["id"]) for answer in made)
    expired_at = {old: ago(1) - timedelta(minutes=1), recent: ago(1) + timedelta(minutes=5)}
    for key, at in expired_at.items():
        db.execute("UPDATE api_keys SET expires_at = %s WHERE id = %s", (at, key))
    forever = uuid.UUID(tenant_key_id(db, tenant.key))

    env(HOOKPOST_CLEANUP_DRY_RUN="true")
    assert run_once("cleanup").counts["api_keys_due"] >= 1
    assert existing(db, "api_keys", [old, recent, live, forever]) == {old, recent, live, forever}

    env(HOOKPOST_CLEANUP_DRY_RUN="false")
    assert run_once("cleanup").counts["api_keys_deleted"] >= 1
    # Expired less than a day ago, not expiring yet, or never: kept.
    assert existing(db, "api_keys", [old, recent, live, forever]) == {recent, live, forever}
    assert tenant.get("/event-types").status_code == 200


def tenant_key_id(db, key: str) -> str:
    row = db.execute("SELECT id FROM api_keys WHERE key_hash = %s", (hash_api_key(key),))
    return str(row.fetchone()["id"])
