"""Fair scheduling through a real deliver loop: one tenant's backlog to a slow receiver never
makes another tenant's fresh event wait for it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from hookpost.config import get_settings
from support_delivery import Receiver, Slow, delivering, send_batches, settled
from support_process import wait_for

BACKLOG = 2000
SLOW_S = 1.0


@pytest.fixture
def other_receiver() -> Iterator[Receiver]:
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


def test_a_fresh_event_overtakes_another_tenants_slow_backlog(
    tenant, subscribed, receiver, other_tenant, other_receiver, env
):
    # One subscription may hold at most half of the loop's slots (the default, made explicit).
    env(HOOKPOST_DELIVERY_SUBSCRIPTION_SHARE="0.5")
    share = get_settings().delivery.concurrency // 2
    slow = receiver.answer = Slow(SLOW_S)
    other_tenant.event_type("invoice.paid")
    other_tenant.subscription(url=other_receiver.url)
    send_batches(tenant, BACKLOG)
    with delivering(1):
        # The backlog is being worked: the slow receiver holds a batch of requests.
        wait_for(lambda: slow.in_flight >= share, timeout=5, what="the backlog on the wire")
        sent_at = time.monotonic()
        sent = other_tenant.send()
        wait_for(lambda: other_receiver.requests, timeout=5, what="the fresh event")
        (attempt,) = settled(other_tenant, sent["id"], 1)
    arrived_at = other_receiver.requests[0].at
    assert attempt["status"] == "succeeded"
    # Not after a slow answer freed a slot, let alone after the backlog (2,000 requests of a
    # second each): at once.
    assert arrived_at - sent_at < 0.5, f"the fresh event took {arrived_at - sent_at:.2f} s"
    assert sum(r.at < arrived_at for r in receiver.requests) <= 2 * share
    assert slow.most_in_flight <= share
