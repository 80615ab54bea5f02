"""Fair scheduling through a real deliver loop: one tenant's backlog to a slow receiver never
makes another tenant's fresh event wait for it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from aiohttp import web

from hookpost.config import get_settings
from support_delivery import Received, Receiver, delivering, send_batches, settled
from support_process import wait_for

BACKLOG = 2000


class Held:
    """A receiver's answer held until `release()`, as a receiver that has stopped answering:
    requests pile up on the wire meanwhile. Counts them, and the answers given."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most_in_flight = 0
        self.answered = 0
        self._released = threading.Event()

    def release(self) -> None:
        self._released.set()

    async def __call__(self, received: Received) -> web.Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            while not self._released.is_set():
                await asyncio.sleep(0.01)
        finally:
            self.in_flight -= 1
        self.answered += 1
        return web.Response(text="ok")


@pytest.fixture
def other_receiver() -> Iterator[Receiver]:
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def held(receiver: Receiver) -> Iterator[Held]:
    """The receiver's answers, held until the test releases them (or ends)."""
    held = receiver.answer = Held()
    yield held
    held.release()


def test_a_fresh_event_overtakes_another_tenants_stuck_backlog(
    tenant, subscribed, receiver, held, other_tenant, other_receiver, env
):
    # One subscription may hold at most half of the loop's slots (the default, made explicit).
    env(HOOKPOST_DELIVERY_SUBSCRIPTION_SHARE="0.5")
    share = get_settings().delivery.concurrency // 2
    other_tenant.event_type("invoice.paid")
    other_tenant.subscription(url=other_receiver.url)
    send_batches(tenant, BACKLOG)
    with delivering(1):
        # The backlog is being worked: its receiver holds its share of the slots, answering none.
        wait_for(lambda: held.in_flight >= share, timeout=10, what="the backlog on the wire")
        sent = other_tenant.send()
        wait_for(lambda: other_receiver.requests, timeout=10, what="the fresh event")
        # It went out while every request of the backlog was still unanswered: it waited for
        # no slot to free up, let alone for the backlog.
        assert held.answered == 0
        assert held.most_in_flight <= share
        held.release()
        (attempt,) = settled(other_tenant, sent["id"], 1)
    assert attempt["status"] == "succeeded"
