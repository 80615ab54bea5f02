"""Outbound limits per subscription, honoured across deliver loops: a rate, a cap on requests in
flight, the pace a receiver's 429 sets, and its Retry-After."""

from __future__ import annotations

from aiohttp import web

from support_delivery import Received, Slow, delivering, health_of, send_batches, settled
from support_process import wait_for


def test_a_rate_limit_holds_across_loops(tenant, subscribed, receiver):
    assert tenant.patch(f"/subscriptions/{subscribed['id']}", {"rate_limit_per_s": 5}).is_success
    with delivering(2):
        send_batches(tenant, 15)
        wait_for(lambda: len(receiver.requests) == 15, timeout=15, what="15 deliveries")
    times = sorted(r.at for r in receiver.requests)
    # A burst of one second's worth (5), then 5 a second: the last 10 take 2 s at least, and no
    # second ever sees more than the burst and its refill.
    assert times[-1] - times[0] >= 1.8
    assert max(sum(1 for t in times if start <= t < start + 1) for start in times) <= 10


def test_max_in_flight_caps_concurrent_requests_across_loops(tenant, subscribed, receiver):
    assert tenant.patch(f"/subscriptions/{subscribed['id']}", {"max_in_flight": 2}).is_success
    slow = receiver.answer = Slow(0.1)
    with delivering(2):
        send_batches(tenant, 12)
        wait_for(lambda: len(receiver.requests) == 12, timeout=15, what="12 deliveries")
    assert slow.most_in_flight == 2


def test_without_limits_requests_go_out_concurrently(tenant, subscribed, receiver):
    slow = receiver.answer = Slow(0.1)
    with delivering():
        send_batches(tenant, 12)
        wait_for(lambda: len(receiver.requests) == 12, timeout=15, what="12 deliveries")
    assert slow.most_in_flight > 2


def test_a_429_lowers_the_pace_and_successes_raise_it_again(tenant, subscribed, receiver):
    throttled = 4

    def answer(received: Received) -> web.Response:
        if len(receiver.requests) <= throttled:
            return web.Response(status=429, text="slow down")
        return web.Response(text="ok")

    receiver.answer = answer
    with delivering():
        events = send_batches(tenant, throttled)
        wait_for(lambda: health_of(tenant, subscribed)["paced_per_s"] is not None, what="a pace")
        pace = health_of(tenant, subscribed)["paced_per_s"]
        for event in events:
            settled(tenant, event["id"], 2)
        more = send_batches(tenant, 6)
        for event in more:
            settled(tenant, event["id"], 1)
    assert pace <= 2.5
    # The retries and the later events went out at the lowered pace, not all at once ...
    paced = sorted(r.at for r in receiver.requests[throttled:])
    assert paced[-1] - paced[0] >= (len(paced) - 1) / (pace * 1.5)
    # ... which the successes then raised again.
    assert health_of(tenant, subscribed)["paced_per_s"] > pace


def test_retry_after_holds_every_send_to_the_receiver(tenant, subscribed, receiver):
    def answer(received: Received) -> web.Response:
        if len(receiver.requests) == 1:
            return web.Response(status=429, headers={"Retry-After": "1"})
        return web.Response(text="ok")

    receiver.answer = answer
    with delivering():
        first = tenant.send()
        wait_for(lambda: health_of(tenant, subscribed)["paused_until"] is not None, what="a pause")
        second = tenant.send()
        settled(tenant, second["id"], 1)
        settled(tenant, first["id"], 2)
    refused_at = receiver.requests[0].at
    # Neither the retry nor the other event went before the second the receiver asked for.
    assert all(r.at - refused_at >= 0.95 for r in receiver.requests[1:])
