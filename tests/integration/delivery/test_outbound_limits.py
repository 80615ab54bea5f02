"""Outbound limits per subscription, honoured across deliver loops: a rate, a cap on requests in
flight, the pace a receiver's 429 sets, and its Retry-After."""

from __future__ import annotations

import asyncio

from aiohttp import web

from support_delivery import Received, delivering, settled
from support_process import wait_for


def health(tenant, subscription: dict) -> dict:
    return tenant.get(f"/subscriptions/{subscription['id']}").json()["health"]


def send_many(tenant, count: int) -> list[dict]:
    events = [{"event_type": "invoice.paid", "payload": {"n": n}} for n in range(count)]
    response = tenant.post("/events/batch", {"events": events})
    assert response.status_code == 202, response.text
    return response.json()["data"]


def test_a_rate_limit_holds_across_loops(tenant, subscribed, receiver):
    assert tenant.patch(f"/subscriptions/{subscribed['id']}", {"rate_limit_per_s": 5}).is_success
    with delivering(2):
        send_many(tenant, 15)
        wait_for(lambda: len(receiver.requests) == 15, timeout=15, what="15 deliveries")
    times = sorted(r.at for r in receiver.requests)
    # A burst of one second's worth (5), then 5 a second: the last 10 take 2 s at least, and no
    # second ever sees more than the burst and its refill.
    assert times[-1] - times[0] >= 1.8
    assert max(sum(1 for t in times if start <= t < start + 1) for start in times) <= 10


def test_max_in_flight_caps_concurrent_requests_across_loops(tenant, subscribed, receiver):
    assert tenant.patch(f"/subscriptions/{subscribed['id']}", {"max_in_flight": 2}).is_success
    in_flight = []
    peak = [0]

    async def slow(received: Received) -> web.Response:
        in_flight.append(received)
        peak[0] = max(peak[0], len(in_flight))
        await asyncio.sleep(0.1)
        in_flight.remove(received)
        return web.Response(text="ok")

    receiver.answer = slow
    with delivering(2):
        send_many(tenant, 12)
        wait_for(lambda: len(receiver.requests) == 12, timeout=15, what="12 deliveries")
    assert peak[0] == 2


def test_without_limits_requests_go_out_concurrently(tenant, subscribed, receiver):
    in_flight = []
    peak = [0]

    async def slow(received: Received) -> web.Response:
        in_flight.append(received)
        peak[0] = max(peak[0], len(in_flight))
        await asyncio.sleep(0.1)
        in_flight.remove(received)
        return web.Response(text="ok")

    receiver.answer = slow
    with delivering():
        send_many(tenant, 12)
        wait_for(lambda: len(receiver.requests) == 12, timeout=15, what="12 deliveries")
    assert peak[0] > 2


def test_a_429_lowers_the_pace_and_successes_raise_it_again(tenant, subscribed, receiver):
    throttled = 4

    def answer(received: Received) -> web.Response:
        if len(receiver.requests) <= throttled:
            return web.Response(status=429, text="slow down")
        return web.Response(text="ok")

    receiver.answer = answer
    with delivering():
        events = send_many(tenant, throttled)
        wait_for(lambda: health(tenant, subscribed)["paced_per_s"] is not None, what="a pace")
        pace = health(tenant, subscribed)["paced_per_s"]
        for event in events:
            settled(tenant, event["id"], 2)
        more = send_many(tenant, 6)
        for event in more:
            settled(tenant, event["id"], 1)
    assert pace <= 2.5
    # The retries and the later events went out at the lowered pace, not all at once ...
    paced = sorted(r.at for r in receiver.requests[throttled:])
    assert paced[-1] - paced[0] >= (len(paced) - 1) / (pace * 1.5)
    # ... which the successes then raised again.
    assert health(tenant, subscribed)["paced_per_s"] > pace


def test_retry_after_holds_every_send_to_the_receiver(tenant, subscribed, receiver):
    def answer(received: Received) -> web.Response:
        if len(receiver.requests) == 1:
            return web.Response(status=429, headers={"Retry-After": "1"})
        return web.Response(text="ok")

    receiver.answer = answer
    with delivering():
        first = tenant.send()
        wait_for(lambda: health(tenant, subscribed)["paused_until"] is not None, what="a pause")
        second = tenant.send()
        settled(tenant, second["id"], 1)
        settled(tenant, first["id"], 2)
    refused_at = receiver.requests[0].at
    # Neither the retry nor the other event went before the second the receiver asked for.
    assert all(r.at - refused_at >= 0.95 for r in receiver.requests[1:])
