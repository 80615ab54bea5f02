"""Debounce (`debounce_s`): an event arriving within debounce_s of the previous one of its
ordering key replaces it (the replaced attempt ends `superseded`); only the newest is sent, once
debounce_s pass with no newer one, and at most 10 x debounce_s after the first of the chain.
Other keys are apart; per_key ordering and batches still hold; replays and manual retries are
sent at once. The events are spaced in time on purpose: the spacing is what is tested."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import psycopg

from support_delivery import attempts_of, count_attempts, delivering, unsettled
from support_process import wait_for


def _ns(receiver) -> list[int]:
    return [json.loads(r.body)["data"]["n"] for r in receiver.requests]


def _at(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def test_only_the_newest_of_a_key_is_sent(tenant, receiver, fast):
    tenant.event_type("invoice.paid")
    tenant.subscription(url=receiver.url, debounce_s=1)
    sent = [tenant.send(payload={"n": n}, ordering_key="cart-1") for n in range(3)]
    other = tenant.send(payload={"n": 10}, ordering_key="cart-2")
    with delivering():
        wait_for(lambda: len(receiver.requests) == 2, timeout=10, what="one per key")
        wait_for(lambda: unsettled(tenant) == 0, timeout=5, what="every outcome recorded")
    assert sorted(_ns(receiver)) == [2, 10]
    assert {r.webhook_id for r in receiver.requests} == {sent[2]["id"], other["id"]}
    for replaced in sent[:2]:
        (attempt,) = attempts_of(tenant, replaced["id"])
        assert attempt["status"] == "superseded" and attempt["started_at"] is None
    superseded = tenant.get("/attempts", params={"status": "superseded"}).json()["data"]
    assert sorted(a["event_id"] for a in superseded) == sorted(s["id"] for s in sent[:2])


def test_several_of_a_key_in_one_request_leave_the_last(tenant, receiver, fast):
    tenant.event_type("invoice.paid")
    tenant.subscription(url=receiver.url, debounce_s=1)
    events = [
        {"event_type": "invoice.paid", "payload": {"n": n}, "ordering_key": "k"} for n in range(5)
    ]
    sent = tenant.post("/events/batch", {"events": events}).json()["data"]
    assert count_attempts(tenant, "superseded") == 4
    with delivering():
        wait_for(lambda: receiver.requests, timeout=10, what="the newest")
        wait_for(lambda: unsettled(tenant) == 0, timeout=5, what="every outcome recorded")
    assert _ns(receiver) == [4] and receiver.requests[0].webhook_id == sent[4]["id"]


def test_each_newer_event_restarts_the_window(tenant, receiver, fast):
    tenant.event_type("invoice.paid")
    tenant.subscription(url=receiver.url, debounce_s=1)
    with delivering():
        for n in range(4):
            last_sent_at = time.monotonic()
            tenant.send(payload={"n": n}, ordering_key="k")
            time.sleep(0.5)
        assert receiver.requests == [], "sent while newer events kept coming"
        wait_for(lambda: receiver.requests, timeout=10, what="the newest")
    assert _ns(receiver) == [3]
    assert receiver.requests[0].at - last_sent_at >= 0.95


def test_a_chain_is_sent_at_most_10_debounces_after_its_first(tenant, receiver, fast):
    tenant.event_type("invoice.paid")
    tenant.subscription(url=receiver.url, debounce_s=1)
    with delivering():
        first = tenant.send(payload={"n": 0}, ordering_key="k")
        n = 0
        while not receiver.requests:
            n += 1
            tenant.send(payload={"n": n}, ordering_key="k")
            time.sleep(0.3)
            assert n < 60, "never sent while events kept coming"
        first_created = _at(tenant.get(f"/events/{first['id']}").json()["created_at"])
        delivered = [a for a in tenant.get("/attempts").json()["data"] if a["started_at"]]
        started = _at(delivered[0]["started_at"])
        wait_for(lambda: unsettled(tenant) <= 1, timeout=10, what="the chain recorded")
    seconds = (started - first_created).total_seconds()
    # Not before the cap; the upper bound leaves room for a loaded machine's scheduling (without
    # the cap nothing would go while events keep coming, and the loop above would fail).
    assert 9.5 <= seconds <= 13, f"sent {seconds:.1f} s after the first"
    # The newest when the cap came: at most the few sent while it was on the wire are newer.
    assert _ns(receiver)[0] >= n - 3, "the newest at the cap is what went"


def test_debounce_works_with_per_key_order_and_batches(tenant, receiver, fast):
    tenant.event_type("invoice.paid")
    sub = tenant.subscription(
        url=receiver.url,
        debounce_s=1,
        ordering="per_key",
        batch={"max_events": 10, "max_wait_ms": 500},
    )
    events = [
        {"event_type": "invoice.paid", "payload": {"n": n, "key": key}, "ordering_key": key}
        for n in range(3)
        for key in "ab"
    ]
    sent = tenant.post("/events/batch", {"events": events}).json()["data"]
    with delivering():
        wait_for(lambda: receiver.requests, timeout=10, what="the batch")
        wait_for(lambda: unsettled(tenant) == 0, timeout=5, what="every outcome recorded")
    [batch] = receiver.requests
    body = batch.verify(sub["secret"])
    assert body["type"] == "hookpost.batch"
    assert [item["id"] for item in body["data"]] == [sent[4]["id"], sent[5]["id"]]
    assert count_attempts(tenant, "superseded") == 4


def test_replays_and_manual_retries_are_not_debounced(tenant, receiver, fast):
    tenant.event_type("invoice.paid")
    sub = tenant.subscription(url=receiver.url, debounce_s=3600)
    held = tenant.send(payload={"n": 0}, ordering_key="k")
    (waiting,) = attempts_of(tenant, held["id"])
    assert waiting["status"] == "pending"
    assert (_at(waiting["due_at"]) - _at(waiting["created_at"])).total_seconds() >= 3599
    with delivering():
        tenant.post(f"/events/{held['id']}/replay")
        wait_for(lambda: len(receiver.requests) == 1, timeout=10, what="the replay")
        tenant.post(f"/attempts/{waiting['id']}/retry")
        wait_for(lambda: len(receiver.requests) == 2, timeout=10, what="the manual retry")
        # A newer event replaces only the event's own waiting attempt.
        newer = tenant.send(payload={"n": 1}, ordering_key="k")
        wait_for(lambda: unsettled(tenant) == 1, timeout=10, what="the sends recorded")
    statuses = sorted(
        (a["trigger"], a["status"])
        for a in attempts_of(tenant, held["id"])
        if a["subscription_id"] == sub["id"]
    )
    assert statuses == [("event", "superseded"), ("manual", "succeeded"), ("replay", "succeeded")]
    assert [a["status"] for a in attempts_of(tenant, newer["id"])] == ["pending"]


def test_two_of_a_key_at_the_same_instant_leave_only_the_newer(tenant, database_url):
    """Two requests with an event of one key, the second arriving while the first is still
    being stored: it waits for the first to commit, then replaces its attempt. (Neither saw the
    other's attempt before, and both were sent.) The first is held open by calling the ingest
    function in a transaction of the test's own."""
    types = tenant.event_type("invoice.paid")
    subscription = tenant.subscription(debounce_s=60)
    first_id = str(uuid.uuid4())
    first_event = {
        "ord": 0,
        "id": first_id,
        "event_id": first_id,
        "event_type": "invoice.paid",
        "payload": {"n": 0},
        "labels": {},
        "occurred_at": datetime.now(UTC).isoformat(),
        "type_version": types["updated_at"],
        "ordering_key": "k",
        "deliver_at": None,
        "expires_at": None,
        "priority": 0,
    }
    with (
        psycopg.connect(database_url) as first,
        psycopg.connect(database_url, autocommit=True) as watch,
        ThreadPoolExecutor(1) as pool,
    ):
        first.execute(
            "SELECT * FROM hookpost_ingest(%s, NULL, '{}', '{}', '{}', %s::jsonb)",
            (tenant.id, json.dumps([first_event])),
        )
        second = pool.submit(tenant.send, payload={"n": 1}, ordering_key="k")
        wait_for(
            lambda: (
                watch.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'"
                ).fetchone()[0]
                > 0
            ),
            timeout=10,
            what="the second request waiting for the first",
        )
        first.commit()
        second_id = second.result(timeout=10)["id"]
    statuses = {a["event_id"]: a["status"] for a in tenant.get("/attempts").json()["data"]}
    assert statuses == {first_id: "superseded", second_id: "pending"}
    assert tenant.delete(f"/subscriptions/{subscription['id']}").status_code == 204
