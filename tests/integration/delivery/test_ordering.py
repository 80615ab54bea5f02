"""Ordered delivery (`ordering: per_key`): the events of one ordering key reach the receiver one
at a time, in the order they were accepted; a failing head holds back its own key only; the
key is the event type unless given; and without the setting nothing is serialized."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter, defaultdict

import pytest
from aiohttp import web

from support_delivery import Received, attempts_of, delivering, settled, unsettled
from support_process import wait_for


class Tracking:
    """A receiver answer that notes, per ordering key (the payload's `key`, else the event
    type), the order of the payload's `n` as they arrive and how many requests are on the
    wire at once; it answers after `delay_s`, with a 500 while `failing(data)` holds. The
    receiver's handlers all run on its one event loop thread: no locks needed."""

    def __init__(self, delay_s: float = 0.05) -> None:
        self.delay_s = delay_s
        self.order: dict[str, list[int]] = defaultdict(list)
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()
        self.answered: Counter[str] = Counter()
        self.failing = lambda data: False

    async def __call__(self, received: Received) -> web.Response:
        body = json.loads(received.body)
        data = body["data"]
        key = data.get("key", body["type"])
        self.order[key].append(data["n"])
        self.in_flight[key] += 1
        self.max_in_flight[key] = max(self.max_in_flight[key], self.in_flight[key])
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.in_flight[key] -= 1
        self.answered[key] += 1
        if self.failing(data):
            return web.Response(status=500, text="not now")
        return web.Response(text="thanks")


def send_interleaved(tenant, keys: str, count: int) -> dict[str, list[str]]:
    """`count` events of each key, one request each, the keys taking turns; their ids by key."""
    ids: dict[str, list[str]] = defaultdict(list)
    for n in range(count):
        for key in keys:
            sent = tenant.send(payload={"key": key, "n": n}, ordering_key=key)
            ids[key].append(sent["id"])
    return ids


@pytest.fixture
def ordered(tenant, receiver, fast) -> dict:
    tenant.event_type("invoice.paid")
    return tenant.subscription(url=receiver.url, ordering="per_key")


def test_one_key_is_delivered_in_order_one_at_a_time(tenant, ordered, receiver):
    tracking = receiver.answer = Tracking(delay_s=0.05)
    send_interleaved(tenant, "abc", 6)
    with delivering(2):
        wait_for(lambda: len(receiver.requests) >= 18, timeout=10, what="18 deliveries")
        wait_for(lambda: unsettled(tenant) == 0, timeout=5, what="every outcome recorded")
    assert dict(tracking.order) == {key: list(range(6)) for key in "abc"}
    assert tracking.max_in_flight == {"a": 1, "b": 1, "c": 1}
    assert len(receiver.requests) == 18


def test_a_batch_of_one_key_is_delivered_in_the_order_of_the_batch(tenant, ordered, receiver):
    tracking = receiver.answer = Tracking(delay_s=0.01)
    events = [
        {"event_type": "invoice.paid", "payload": {"key": "a", "n": n}, "ordering_key": "a"}
        for n in range(20)
    ]
    response = tenant.post("/events/batch", {"events": events})
    assert response.status_code == 202, response.text
    with delivering(2):
        wait_for(lambda: len(receiver.requests) >= 20, timeout=10, what="20 deliveries")
    assert tracking.order["a"] == list(range(20))
    assert tracking.max_in_flight["a"] == 1


def test_the_key_is_the_event_type_unless_given(tenant, ordered, receiver):
    tenant.event_type("invoice.voided")
    tracking = receiver.answer = Tracking(delay_s=0.05)
    sent = [
        tenant.send(event_type, payload={"n": n})
        for n in range(5)
        for event_type in ("invoice.paid", "invoice.voided")
    ]
    assert tenant.get(f"/events/{sent[0]['id']}").json()["ordering_key"] == "invoice.paid"
    with delivering(2):
        wait_for(lambda: len(receiver.requests) >= 10, timeout=10, what="10 deliveries")
    assert dict(tracking.order) == {
        "invoice.paid": list(range(5)),
        "invoice.voided": list(range(5)),
    }
    assert tracking.max_in_flight == {"invoice.paid": 1, "invoice.voided": 1}


def test_a_failing_head_holds_back_only_its_own_key(tenant, ordered, receiver, env):
    # Key a's head is retried (fast) for as long as the test keeps it failing, and the breaker,
    # which would hold the whole subscription, stays out of the way.
    env(
        HOOKPOST_RETRY_FAST_COUNT="1000",
        HOOKPOST_CIRCUIT_FAILURES="1000",
        HOOKPOST_CIRCUIT_MIN_REQUESTS="1000",
    )
    a_down = threading.Event()
    a_down.set()
    tracking = receiver.answer = Tracking(delay_s=0.02)
    tracking.failing = lambda data: data["key"] == "a" and a_down.is_set()
    ids = send_interleaved(tenant, "ab", 3)
    with delivering(2):
        wait_for(
            lambda: tracking.order["b"] == [0, 1, 2] and tracking.order["a"].count(0) >= 3,
            timeout=10,
            what="b delivered while a's head is retried",
        )
        # b went on; a's second event waits behind its failing head.
        assert set(tracking.order["a"]) == {0}
        assert tracking.answered["b"] == 3
        a_down.clear()
        for event_id in ids["a"][1:]:
            settled(tenant, event_id, 1)
    tries = tracking.order["a"].count(0)
    assert tracking.order["a"] == [0] * tries + [1, 2]
    head = attempts_of(tenant, ids["a"][0])
    assert [a["status"] for a in head] == ["failed"] * (tries - 1) + ["succeeded"]
    assert tracking.max_in_flight == {"a": 1, "b": 1}


def test_a_head_that_gives_up_lets_its_key_go_on(tenant, ordered, receiver, no_retries):
    tracking = receiver.answer = Tracking(delay_s=0.01)
    tracking.failing = lambda data: data["n"] == 0
    ids = send_interleaved(tenant, "a", 3)
    with delivering(1):
        attempts = [settled(tenant, event_id, 1) for event_id in ids["a"]]
    assert [a["status"] for (a,) in attempts] == ["gave_up", "succeeded", "succeeded"]
    assert tracking.order["a"] == [0, 1, 2]


def test_without_ordering_one_key_is_not_serialized(tenant, subscribed, receiver):
    tracking = receiver.answer = Tracking(delay_s=0.3)
    send_interleaved(tenant, "a", 6)
    with delivering(1):
        wait_for(lambda: len(receiver.requests) >= 6, timeout=10, what="6 deliveries")
    assert tracking.max_in_flight["a"] > 1


def test_switching_to_per_key_orders_the_pending_attempts_too(tenant, subscribed, receiver):
    tracking = receiver.answer = Tracking(delay_s=0.05)
    ids = send_interleaved(tenant, "ab", 5)
    # Fanned out while the subscription was not ordered.
    assert all(attempts_of(tenant, i)[0]["status"] == "pending" for i in ids["a"] + ids["b"])
    switched = tenant.patch(f"/subscriptions/{subscribed['id']}", {"ordering": "per_key"})
    assert switched.status_code == 200, switched.text
    assert switched.json()["ordering"] == "per_key"
    with delivering(2):
        wait_for(lambda: len(receiver.requests) >= 10, timeout=10, what="10 deliveries")
    assert dict(tracking.order) == {"a": list(range(5)), "b": list(range(5))}
    assert tracking.max_in_flight == {"a": 1, "b": 1}
