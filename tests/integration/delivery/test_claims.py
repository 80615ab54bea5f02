"""Claims and leases at the statement level: fair shares under a backlog, held subscriptions,
lease recovery, and which claim may record an outcome."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from hookpost.config import CircuitSettings
from hookpost.db.pool import connection
from hookpost.delivery import claims, recover_expired_leases
from hookpost.delivery.recorder import Result
from hookpost.delivery.schedule import SUCCEEDED, Decision
from hookpost.delivery.sender import Outcome
from support_delivery import delivering
from support_process import wait_for

CIRCUIT = CircuitSettings.from_env()


def only_these_ready(conn, *subscription_ids: str) -> None:
    """Other tests' subscriptions out of the claim queue, for this transaction. Call it once every
    request through the API is made: its row locks would hold up an ingest's."""
    conn.execute(
        "UPDATE subscription_state SET ready_at = NULL WHERE NOT subscription_id = ANY(%(ids)s)",
        {"ids": list(subscription_ids)},
    )


def backlog(conn, subscription_id: str, event: dict, tenant, count: int) -> None:
    """`count` due attempts of one event to one subscription, the oldest an hour old."""
    conn.execute(
        "INSERT INTO attempts (application_id, event_id, subscription_id, due_at)"
        " SELECT %(app)s, %(event)s, %(sub)s, now() - interval '1 hour' + n * interval '1 ms'"
        " FROM generate_series(1, %(count)s) AS n",
        {"app": tenant.id, "event": event["id"], "sub": subscription_id, "count": count},
    )


@pytest.fixture
def other(other_tenant) -> dict:
    other_tenant.event_type("invoice.paid")
    return other_tenant.subscription()


def test_a_backlog_takes_its_share_and_a_fresh_event_goes_in_the_same_claim(
    tenant, other_tenant, subscribed, other
):
    seed, fresh = tenant.send(), other_tenant.send()
    with connection() as conn, conn.transaction(force_rollback=True):
        only_these_ready(conn, subscribed["id"], other["id"])
        backlog(conn, subscribed["id"], seed, tenant, 20_000)
        claimed = claims.claim(conn, uuid.uuid4(), 100, 60.0).attempts
        by_subscription = Counter(str(row["subscription_id"]) for row in claimed)
        # The fresh event is not queued behind 20,000 older attempts; the backlog has the rest.
        assert fresh["id"] in {str(row["event_id"]) for row in claimed}
        assert by_subscription == {other["id"]: 1, subscribed["id"]: 99}


def test_a_held_backlog_costs_the_claim_nothing(tenant, other_tenant, subscribed, other):
    seed, fresh = tenant.send(), other_tenant.send()
    with connection() as conn, conn.transaction(force_rollback=True):
        only_these_ready(conn, subscribed["id"], other["id"])
        backlog(conn, subscribed["id"], seed, tenant, 20_000)
        conn.execute(
            "UPDATE subscription_health SET circuit = 'open', opened_at = now(),"
            " probe_at = now() + interval '1 minute' WHERE subscription_id = %(id)s",
            {"id": subscribed["id"]},
        )
        claimed = claims.claim(conn, uuid.uuid4(), 100, 60.0)
        assert [str(row["event_id"]) for row in claimed.attempts] == [fresh["id"]]
        # The open circuit's subscription is not looked at again before its probe is due.
        state = conn.execute(
            "SELECT ready_at, probe_at FROM subscription_state JOIN subscription_health"
            " USING (subscription_id) WHERE subscription_id = %(id)s",
            {"id": subscribed["id"]},
        ).fetchone()
        assert state["ready_at"] == state["probe_at"]
        assert claims.claim(conn, uuid.uuid4(), 100, 60.0).attempts == []


def test_a_loop_holds_at_most_its_share_of_one_subscription(tenant, subscribed):
    seed = tenant.send()
    with connection() as conn, conn.transaction(force_rollback=True):
        only_these_ready(conn, subscribed["id"])
        backlog(conn, subscribed["id"], seed, tenant, 100)
        sub = uuid.UUID(subscribed["id"])
        first = claims.claim(conn, uuid.uuid4(), 100, 60.0, share=50, holding={}).attempts
        assert len(first) == 50
        again = claims.claim(conn, uuid.uuid4(), 50, 60.0, share=50, holding={sub: 50})
        assert again.attempts == []
        # Ready, but the loop must wait for an answer, not the clock.
        assert again.next_ready == claims.ReadyNow()


def test_an_expired_lease_returns_the_attempt_to_be_delivered(tenant, subscribed, receiver):
    sent = tenant.send()
    with connection() as conn:
        # A worker that claimed it and died: its lease is already over.
        claimed = claims.claim(conn, uuid.uuid4(), 10_000, 0.0).attempts
        assert sent["id"] in {str(row["event_id"]) for row in claimed}
        assert recover_expired_leases(conn) >= 1
    (attempt,) = tenant.get(f"/events/{sent['id']}").json()["attempts"]
    assert attempt["status"] == "pending"
    with delivering():
        wait_for(lambda: receiver.to(sent["id"]), timeout=10, what="the delivery")


def outcome(attempt_id: uuid.UUID, claim_id: uuid.UUID) -> dict:
    return Result.of(
        attempt_id,
        claim_id,
        Outcome(status_code=200, headers={}, body="", elapsed_ms=1),
        Decision(SUCCEEDED),
        ord=1,
    ).row()


def test_only_the_claim_holding_an_attempt_records_it(tenant, subscribed):
    sent = tenant.send()
    dead, alive = uuid.uuid4(), uuid.uuid4()
    with connection() as conn:
        (attempt,) = [
            row
            for row in claims.claim(conn, dead, 10_000, 0.0).attempts
            if str(row["event_id"]) == sent["id"]
        ]
        recover_expired_leases(conn)
        claimed_again = claims.claim(conn, alive, 10_000, 60.0).attempts
        assert attempt["id"] in {row["id"] for row in claimed_again}
        # The dead worker's late result no longer counts; the live claim's does.
        assert claims.record(conn, [outcome(attempt["id"], dead)], CIRCUIT) == {}
        assert claims.record(conn, [outcome(attempt["id"], alive)], CIRCUIT) == {"succeeded": 1}
        others = [row["id"] for row in claimed_again if row["id"] != attempt["id"]]
        # Hand the rest back, as a stopping worker would.
        assert claims.release(conn, [alive], others) == len(others)


def test_the_share_holds_when_what_others_leave_goes_back_to_a_backlog(
    tenant, other_tenant, subscribed, other
):
    seed, fresh = tenant.send(), other_tenant.send()
    with connection() as conn, conn.transaction(force_rollback=True):
        only_these_ready(conn, subscribed["id"], other["id"])
        backlog(conn, subscribed["id"], seed, tenant, 200)
        sub = uuid.UUID(subscribed["id"])
        # Half of the batch (30) is the backlog's part, and the other's unused part goes back to
        # it: but never beyond the 50 the loop may hold, 10 of which it holds already.
        claimed = claims.claim(conn, uuid.uuid4(), 60, 60.0, share=50, holding={sub: 10})
        by_subscription = Counter(str(row["subscription_id"]) for row in claimed.attempts)
        assert by_subscription == {subscribed["id"]: 40, other["id"]: 1}
        assert fresh["id"] in {str(row["event_id"]) for row in claimed.attempts}


def test_turns_go_by_application_so_many_busy_subscriptions_crowd_out_nobody(
    tenant, other_tenant, subscribed, other
):
    seed = tenant.send()
    with connection() as conn:
        # The other tenant's event is the newest thing ready: last, were turns by subscription.
        conn.execute(
            "UPDATE subscription_state SET ready_at = NULL WHERE subscription_id = %(id)s",
            {"id": other["id"]},
        )
    fresh = other_tenant.send()
    with connection() as conn, conn.transaction(force_rollback=True):
        only_these_ready(conn, subscribed["id"], other["id"])
        crowd = conn.execute(
            "INSERT INTO subscriptions (application_id, url, event_types, secret)"
            " SELECT %(app)s, 'http://127.0.0.1:9/hook', '{*}', 'whsec_x'"
            " FROM generate_series(1, 150) RETURNING id",
            {"app": tenant.id},
        ).fetchall()
        for row in crowd:
            backlog(conn, str(row["id"]), seed, tenant, 2)
        claimed = claims.claim(conn, uuid.uuid4(), 100, 60.0).attempts
        # 150 subscriptions of one application waited longer; the other's event still goes.
        assert fresh["id"] in {str(row["event_id"]) for row in claimed}
        assert len(claimed) == 100
