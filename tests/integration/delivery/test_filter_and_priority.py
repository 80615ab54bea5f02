"""Filters and priority, delivered: a subscription with a `filter` receives only the events whose
payload satisfies it (at ingest, on replay, and for operational events); within a
subscription, higher priority goes first, except that the events of one key of a per_key
subscription still go in order."""

from __future__ import annotations

import json

from support_delivery import delivering, unsettled
from support_process import wait_for

EUR_100 = '$.amount >= 100 && $.currency == "EUR"'


def _amounts(receiver) -> list[object]:
    return [json.loads(r.body)["data"].get("amount") for r in receiver.requests]


def test_only_events_the_filter_holds_for_are_delivered(tenant, receiver, fast):
    tenant.event_type("invoice.paid")
    filtered = tenant.subscription(url=receiver.url + "/filtered", filter=EUR_100)
    tenant.subscription(url=receiver.url + "/all")
    payloads = [
        {"amount": 150, "currency": "EUR"},
        {"amount": 50, "currency": "EUR"},
        {"amount": 150, "currency": "USD"},
        {"currency": "EUR"},
        {"amount": "lots", "currency": "EUR"},
        {"amount": 100, "currency": "EUR"},
    ]
    sent = [tenant.send(payload=payload) for payload in payloads]
    # Payloads the path does not fit (not an object, no such field) simply do not match.
    for odd in (["a", "list"], "text", 7):
        assert tenant.send(payload=odd)["attempts_created"] == 1
    assert [s["attempts_created"] for s in sent] == [2, 1, 1, 1, 1, 2]
    with delivering():
        wait_for(lambda: len(receiver.requests) == 11, timeout=10, what="11 deliveries")
        wait_for(lambda: unsettled(tenant) == 0, timeout=5, what="every outcome recorded")
    to_filtered = [r for r in receiver.requests if r.path.endswith("/filtered")]
    assert sorted(json.loads(r.body)["data"]["amount"] for r in to_filtered) == [100, 150]
    assert {r.verify(filtered["secret"])["data"]["currency"] for r in to_filtered} == {"EUR"}


def test_a_filter_set_later_applies_to_later_events_and_replays(tenant, receiver, fast):
    tenant.event_type("invoice.paid")
    sub = tenant.subscription(url=receiver.url)
    small = tenant.send(payload={"amount": 5, "currency": "EUR"})
    assert small["attempts_created"] == 1
    tenant.patch(f"/subscriptions/{sub['id']}", {"filter": EUR_100})
    assert tenant.send(payload={"amount": 5, "currency": "EUR"})["attempts_created"] == 0
    replayed = tenant.post(f"/events/{small['id']}/replay").json()
    assert replayed["attempts_created"] == 0, "a replay goes to the subscriptions matching now"
    named = tenant.post(f"/events/{small['id']}/replay", {"subscription_ids": [sub["id"]]})
    assert named.json()["attempts_created"] == 1, "naming the subscription sends it anyway"
    tenant.patch(f"/subscriptions/{sub['id']}", {"filter": None})
    assert tenant.send(payload={"amount": 5, "currency": "EUR"})["attempts_created"] == 1


def test_operational_events_are_filtered_too(tenant, receiver, no_retries):
    tenant.event_type("invoice.paid")
    tenant.subscription(url="http://127.0.0.1:9/down", event_types=["invoice.paid"])
    for path, path_filter in (
        ("/voided", '$.event_type == "invoice.voided"'),
        ("/paid", '$.event_type == "invoice.paid" && $.try_number == 1'),
    ):
        tenant.subscription(
            url=receiver.url + path, event_types=["hookpost.attempt.gave_up"], filter=path_filter
        )
    tenant.send()
    with delivering():
        wait_for(lambda: len(receiver.requests) == 1, timeout=10, what="the gave_up event")
        wait_for(lambda: unsettled(tenant) == 0, timeout=5, what="nothing left to send")
    assert [r.path for r in receiver.requests] == ["/hook/paid"]
    gave_up = tenant.get("/events", params={"event_type": "hookpost.attempt.gave_up"}).json()
    assert [e["attempts_created"] for e in gave_up["data"]] == [1]


def test_a_backlog_of_low_is_overtaken_by_high(tenant, receiver, fast):
    tenant.event_type("invoice.paid")
    # One request at a time, so the order of arrival is the order of the claims.
    tenant.subscription(url=receiver.url, max_in_flight=1)
    events = [
        {"event_type": "invoice.paid", "payload": {"amount": n}, "priority": "low"}
        for n in range(20)
    ]
    assert tenant.post("/events/batch", {"events": events}).status_code == 202
    tenant.send(payload={"amount": 100}, priority="normal")
    tenant.send(payload={"amount": 200}, priority="high")
    with delivering():
        wait_for(lambda: len(receiver.requests) == 22, timeout=15, what="22 deliveries")
    assert _amounts(receiver) == [200, 100, *range(20)]


def test_per_key_order_wins_over_priority(tenant, receiver, fast):
    tenant.event_type("invoice.paid")
    tenant.subscription(url=receiver.url, ordering="per_key", max_in_flight=1)
    tenant.send(payload={"amount": 1}, ordering_key="a", priority="low")
    tenant.send(payload={"amount": 2}, ordering_key="a", priority="high")
    tenant.send(payload={"amount": 3}, ordering_key="b", priority="low")
    tenant.send(payload={"amount": 4}, ordering_key="c", priority="high")
    with delivering():
        wait_for(lambda: len(receiver.requests) == 4, timeout=10, what="4 deliveries")
    amounts = _amounts(receiver)
    assert amounts[0] == 4, "the high head of key c goes before the low heads of a and b"
    assert amounts.index(1) < amounts.index(2), "key a stays in order whatever the priority"


def test_a_retry_and_a_replay_keep_the_events_priority(tenant, receiver, fast, database_url):
    import psycopg

    tenant.event_type("invoice.paid")
    sub = tenant.subscription(url=receiver.url)
    sent = tenant.send(priority="high")
    tenant.post(f"/events/{sent['id']}/replay")
    attempt = tenant.get(f"/events/{sent['id']}").json()["attempts"][0]
    tenant.post(f"/attempts/{attempt['id']}/retry")
    with psycopg.connect(database_url) as conn:
        priorities = conn.execute(
            "SELECT priority FROM attempts WHERE event_id = %s AND subscription_id = %s",
            (sent["id"], sub["id"]),
        ).fetchall()
    assert priorities == [(1,), (1,), (1,)]
