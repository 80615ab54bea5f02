"""Claims and leases at the statement level: the plan, lease recovery, and which claim may
record an outcome."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from hookpost.db import queries
from hookpost.db.pool import connection
from hookpost.delivery import claims, recover_expired_leases
from support_delivery import delivering
from support_process import wait_for


def nodes(plan: dict) -> Iterator[dict]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def test_the_claim_reads_the_partial_index_under_a_backlog(tenant, subscribed):
    sent = tenant.send()
    with connection() as conn, conn.transaction(force_rollback=True):
        # A large backlog of due attempts, gone again at the end of the test.
        conn.execute(
            "INSERT INTO attempts (application_id, event_id, subscription_id, due_at)"
            " SELECT %(app)s, %(event)s, %(sub)s, now() - n * interval '1 ms'"
            " FROM generate_series(1, 20000) AS n",
            {"app": tenant.id, "event": sent["id"], "sub": subscribed["id"]},
        )
        conn.execute("ANALYZE attempts")
        plan = conn.execute(
            "EXPLAIN (FORMAT JSON) " + queries.DELIVERY_CLAIM,
            {"claim_id": uuid.uuid4(), "limit": 100, "lease_s": 60.0},
        ).fetchone()
    plan_nodes = list(nodes(plan["QUERY PLAN"][0]["Plan"]))
    scans = {(node["Node Type"], node.get("Index Name")) for node in plan_nodes}
    # Due order straight from the partial index, locked as it is read: nothing sorted.
    assert ("Index Scan", "attempts_pending_due_idx") in scans
    assert ("LockRows", None) in scans
    assert ("Sort", None) not in scans
    # The claimed rows are then updated through the primary key: no scan of the table.
    assert ("Index Scan", "attempts_pkey") in scans
    assert not [
        n for n in plan_nodes if n["Node Type"] == "Seq Scan" and n["Relation Name"] == "attempts"
    ]


def test_an_expired_lease_returns_the_attempt_to_be_delivered(tenant, subscribed, receiver):
    sent = tenant.send()
    with connection() as conn:
        # A worker that claimed it and died: its lease is already over.
        claimed = claims.claim(conn, uuid.uuid4(), 10_000, 0.0)
        assert sent["id"] in {str(row["event_id"]) for row in claimed}
        assert recover_expired_leases(conn) >= 1
    (attempt,) = tenant.get(f"/events/{sent['id']}").json()["attempts"]
    assert attempt["status"] == "pending"
    with delivering():
        wait_for(lambda: receiver.to(sent["id"]), timeout=10, what="the delivery")


def outcome(attempt_id: uuid.UUID, claim_id: uuid.UUID) -> dict:
    return {
        "id": attempt_id,
        "claim_id": claim_id,
        "status": "succeeded",
        "response_status": 200,
        "response_headers": {},
        "response_body": "",
        "elapsed_ms": 1,
        "error": None,
        "retry_in_s": None,
        "disable": False,
    }


def test_only_the_claim_holding_an_attempt_records_it(tenant, subscribed):
    sent = tenant.send()
    dead, alive = uuid.uuid4(), uuid.uuid4()
    with connection() as conn:
        (attempt,) = [
            row
            for row in claims.claim(conn, dead, 10_000, 0.0)
            if str(row["event_id"]) == sent["id"]
        ]
        recover_expired_leases(conn)
        claimed_again = claims.claim(conn, alive, 10_000, 60.0)
        assert attempt["id"] in {row["id"] for row in claimed_again}
        # The dead worker's late result no longer counts; the live claim's does.
        assert claims.record(conn, [outcome(attempt["id"], dead)]) == {}
        assert claims.record(conn, [outcome(attempt["id"], alive)]) == {"succeeded": 1}
        others = [row["id"] for row in claimed_again if row["id"] != attempt["id"]]
        # Hand the rest back, as a stopping worker would.
        assert claims.release(conn, [alive], others) == len(others)
