"""Batches (`batch: {max_events, max_wait_ms}`): up to max_events due events in one signed POST
of type `hookpost.batch`, in ingest order, waiting at most max_wait_ms after the first for
more; `webhook-id` is the batch's id on every try of it; the batch succeeds or fails whole; each
member's attempt shows its batch_id; filters, key order, thin payloads and the circuit apply as
to single deliveries; a deliver process killed mid-batch loses nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

from aiohttp import web

from support_delivery import (
    attempts_of,
    count_attempts,
    delivering,
    failing_first,
    health_of,
    send_batches,
    unsettled,
)
from support_process import wait_for


def _members(received) -> list[dict]:
    body = json.loads(received.body)
    assert body["type"] == "hookpost.batch"
    return body["data"]


def test_due_events_go_in_batches_of_max_events(tenant, receiver, fast):
    tenant.event_type("invoice.paid")
    sub = tenant.subscription(
        url=receiver.url, batch={"max_events": 10, "max_wait_ms": 0}, filter="$.n % 2 == 0"
    )
    sent = send_batches(tenant, 50)
    matching = [s["id"] for n, s in enumerate(sent) if n % 2 == 0]
    with delivering():
        wait_for(lambda: len(receiver.requests) == 3, timeout=10, what="three batches")
        wait_for(lambda: unsettled(tenant) == 0, timeout=5, what="every outcome recorded")
    sizes = sorted(len(_members(r)) for r in receiver.requests)
    assert sizes == [5, 10, 10]
    members = [m for r in receiver.requests for m in _members(r)]
    assert sorted(m["id"] for m in members) == sorted(matching)
    for request in receiver.requests:
        body = request.verify(sub["secret"])  # signed like any body
        assert set(body) == {"type", "timestamp", "data"}
        items = body["data"]
        assert [item["id"] for item in items] == sorted(item["id"] for item in items)
        assert all(set(item) == {"id", "type", "timestamp", "data"} for item in items)
        assert all(item["type"] == "invoice.paid" for item in items)
        # Each member's attempt names the batch it went in: the request's webhook-id.
        for item in items:
            (attempt,) = attempts_of(tenant, item["id"])
            assert attempt["status"] == "succeeded"
            assert attempt["batch_id"] == request.webhook_id
            detail = tenant.get(f"/attempts/{attempt['id']}").json()
            assert detail["batch_id"] == request.webhook_id
    batch_ids = {r.webhook_id for r in receiver.requests}
    assert len(batch_ids) == 3 and not batch_ids & set(matching)


def test_a_batch_waits_up_to_max_wait_ms_for_more(tenant, receiver, fast):
    tenant.event_type("invoice.paid")
    tenant.subscription(url=receiver.url, batch={"max_events": 100, "max_wait_ms": 1000})
    with delivering():
        started = time.monotonic()
        for n in range(3):
            tenant.send(payload={"n": n})
        wait_for(lambda: receiver.requests, timeout=10, what="the batch")
        waited = receiver.requests[0].at - started
        wait_for(lambda: unsettled(tenant) == 0, timeout=5, what="every outcome recorded")
    assert [len(_members(r)) for r in receiver.requests] == [3]
    assert waited >= 0.9, f"sent after {waited:.2f} s, before max_wait_ms"


def test_a_full_batch_goes_at_once(tenant, receiver, fast):
    tenant.event_type("invoice.paid")
    tenant.subscription(url=receiver.url, batch={"max_events": 5, "max_wait_ms": 60000})
    with delivering():
        started = time.monotonic()
        send_batches(tenant, 5)
        wait_for(lambda: receiver.requests, timeout=10, what="the full batch")
    assert receiver.requests[0].at - started < 10
    assert [len(_members(r)) for r in receiver.requests] == [5]


def test_a_failed_batch_is_retried_whole_under_the_same_id(tenant, receiver, fast):
    tenant.event_type("invoice.paid")
    tenant.subscription(url=receiver.url, batch={"max_events": 10, "max_wait_ms": 0})
    receiver.answer = failing_first(1)
    sent = send_batches(tenant, 4)
    with delivering():
        wait_for(lambda: len(receiver.requests) == 2, timeout=10, what="the retried batch")
        wait_for(lambda: unsettled(tenant) == 0, timeout=5, what="every outcome recorded")
    first, again = receiver.requests
    assert first.webhook_id == again.webhook_id
    assert [m["id"] for m in _members(again)] == [s["id"] for s in sent]
    for event in sent:
        tries = attempts_of(tenant, event["id"])
        assert [a["status"] for a in tries] == ["failed", "succeeded"]
        assert {a["batch_id"] for a in tries} == {first.webhook_id}


def test_a_failing_batch_counts_once_towards_the_circuit(tenant, receiver, no_retries):
    tenant.event_type("invoice.paid")
    sub = tenant.subscription(url=receiver.url, batch={"max_events": 10, "max_wait_ms": 0})
    receiver.answer = lambda received: web.Response(status=500)
    send_batches(tenant, 10)
    with delivering():
        wait_for(lambda: count_attempts(tenant, "gave_up") == 10, timeout=10, what="gave up")
    assert len(receiver.requests) == 1
    assert health_of(tenant, sub)["failure_streak"] == 1
    assert health_of(tenant, sub)["circuit"] == "closed"


def test_per_key_batches_keep_each_keys_order(tenant, receiver, fast):
    tenant.event_type("invoice.paid")
    tenant.subscription(
        url=receiver.url, ordering="per_key", batch={"max_events": 10, "max_wait_ms": 0}
    )
    events = [
        {"event_type": "invoice.paid", "payload": {"key": key, "n": n}, "ordering_key": key}
        for n in range(4)
        for key in "abc"
    ]
    assert tenant.post("/events/batch", {"events": events}).status_code == 202
    with delivering(2):
        wait_for(lambda: sum(len(_members(r)) for r in receiver.requests) == 12, timeout=10)
    order: dict[str, list[int]] = {}
    for request in receiver.requests:
        keys = [m["data"]["key"] for m in _members(request)]
        assert len(keys) == len(set(keys)), "one event of a key per batch, in flight alone"
        for member in _members(request):
            order.setdefault(member["data"]["key"], []).append(member["data"]["n"])
    assert order == {key: [0, 1, 2, 3] for key in "abc"}


def test_a_thin_batch_links_each_member(tenant, receiver, fast, env, api):
    env(HOOKPOST_PUBLIC_URL="http://hookpost.test")
    tenant.event_type("invoice.paid")
    tenant.subscription(url=receiver.url, payload="thin", batch={"max_events": 3, "max_wait_ms": 0})
    sent = send_batches(tenant, 3)
    with delivering():
        wait_for(lambda: receiver.requests, timeout=10, what="the batch")
    members = _members(receiver.requests[0])
    assert [m["data"]["id"] for m in members] == [s["id"] for s in sent]
    for member, event in zip(members, sent, strict=True):
        assert member["data"]["event_id"] == event["event_id"]
        fetched = api.get(member["data"]["fetch_url"]).json()
        assert fetched["id"] == event["id"] and fetched["data"] == {"n": sent.index(event)}


# Short leases, so that a killed process's batches come back quickly.
DELIVER_PROCESS = {"HOOKPOST_DELIVERY_LEASE_S": "1"}


def test_a_process_killed_mid_batch_loses_no_member(tenant, receiver, fast):
    tenant.event_type("invoice.paid")
    tenant.subscription(url=receiver.url, batch={"max_events": 50, "max_wait_ms": 0})
    hanging = True

    async def hang_then_answer(received):
        while hanging:
            await asyncio.sleep(0.05)
        return web.Response()

    receiver.answer = hang_then_answer
    ids = [s["id"] for s in send_batches(tenant, 200)]
    first = subprocess.Popen(
        [sys.executable, "-m", "hookpost.cli", "deliver"],
        env={**os.environ, **DELIVER_PROCESS},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: len(receiver.requests) == 4, timeout=20, what="four batches on the wire")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    held = {r.webhook_id: [m["id"] for m in _members(r)] for r in receiver.requests}
    assert count_attempts(tenant, "in_flight") == 200
    hanging = False

    with delivering():
        wait_for(lambda: count_attempts(tenant, "succeeded") == 200, timeout=30, what="all 200")
    again = {r.webhook_id: [m["id"] for m in _members(r)] for r in receiver.requests[4:]}
    assert again == held, "each batch is sent again whole, under its id"
    assert sorted(m for members in again.values() for m in members) == sorted(ids)
    assert unsettled(tenant) == 0
