"""Whole deliver loops: several at once, stopping cleanly, and a process killed mid-batch."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

from aiohttp import web

from support_delivery import count_attempts, delivering, send_batches, unsettled
from support_process import wait_for


def test_four_loops_deliver_2000_attempts_exactly_once(tenant, subscribed, receiver):
    ids = [result["id"] for result in send_batches(tenant, 2000)]
    with delivering(4) as workers:
        wait_for(lambda: len(receiver.requests) >= 2000, timeout=30, what="2,000 deliveries")
        wait_for(lambda: unsettled(tenant) == 0, timeout=10, what="every outcome recorded")
    assert len(receiver.requests) == 2000
    assert {r.webhook_id for r in receiver.requests} == set(ids)
    assert count_attempts(tenant, "succeeded") == 2000
    # A try that failed on the way (a connect timeout when this load overflows the receiver's
    # accept queue) is retried as a new attempt; no attempt is ever claimed twice.
    failed = count_attempts(tenant, "failed")
    assert sum(worker.summary.claimed for worker in workers) == 2000 + failed
    assert sum(worker.summary.succeeded for worker in workers) == 2000


def test_stopping_finishes_what_is_on_the_wire(tenant, subscribed, receiver, env):
    env(HOOKPOST_DELIVERY_STOP_GRACE_S="10")

    async def slowish(received):
        await asyncio.sleep(0.3)
        return web.Response()

    receiver.answer = slowish
    with delivering() as (worker,):
        sent = tenant.send()
        wait_for(lambda: receiver.requests, timeout=10, what="the request")
    # Stopped while the request was on the wire: it was waited for and recorded.
    (attempt,) = tenant.get(f"/events/{sent['id']}").json()["attempts"]
    assert attempt["status"] == "succeeded"
    assert worker.summary.released == 0


def test_stopping_releases_what_outlasts_the_grace(tenant, subscribed, receiver, env):
    env(HOOKPOST_DELIVERY_STOP_GRACE_S="0.1")

    async def stuck(received):
        await asyncio.sleep(30)
        return web.Response()

    receiver.answer = stuck
    with delivering() as (worker,):
        sent = tenant.send()
        wait_for(lambda: receiver.requests, timeout=10, what="the request")
    assert worker.summary.released == 1
    (attempt,) = tenant.get(f"/events/{sent['id']}").json()["attempts"]
    assert attempt["status"] == "pending"
    # Back in the queue: the next loop delivers it.
    receiver.answer = lambda received: web.Response()
    with delivering():
        wait_for(lambda: len(receiver.to(sent["id"])) == 2, timeout=10, what="the redelivery")


# The deliver processes' settings: small, so that killing one mid-delivery leaves much undone.
DELIVER_PROCESS = {
    "HOOKPOST_DELIVERY_CONCURRENCY": "20",
    "HOOKPOST_DELIVERY_BATCH_SIZE": "20",
    "HOOKPOST_DELIVERY_LEASE_S": "1",
}


def deliver_process() -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hookpost.cli", "deliver"],
        env={**os.environ, **DELIVER_PROCESS},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_deliver_process_killed_mid_batch_loses_nothing(tenant, subscribed, receiver):
    async def slowish(received):
        await asyncio.sleep(0.05)
        return web.Response()

    receiver.answer = slowish
    ids = [result["id"] for result in send_batches(tenant, 300)]
    first = deliver_process()
    try:
        wait_for(lambda: len(receiver.requests) >= 60, timeout=20, what="deliveries under way")
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=10)
    in_flight = tenant.get("/attempts", params={"status": "in_flight", "limit": 200}).json()
    assert in_flight["data"], "the process was killed with nothing in flight"

    second = deliver_process()
    try:
        wait_for(
            lambda: {r.webhook_id for r in receiver.requests} == set(ids),
            timeout=30,
            what="every event delivered",
        )
        wait_for(lambda: unsettled(tenant) == 0, timeout=10, what="every outcome recorded")
    finally:
        second.send_signal(signal.SIGTERM)
        output, _ = second.communicate(timeout=30)
    assert second.returncode == 0, output
    assert "deliver loop stopped" in output
    assert count_attempts(tenant, "succeeded") == 300
    # Sent again are at most the attempts the killed process held, as the README guarantees:
    # its requests on the wire (concurrency) and the answers not yet recorded, which a loop lets
    # grow to two batches before it claims no more (plan.may_claim).
    held = int(DELIVER_PROCESS["HOOKPOST_DELIVERY_CONCURRENCY"]) + 2 * int(
        DELIVER_PROCESS["HOOKPOST_DELIVERY_BATCH_SIZE"]
    )
    duplicates = len(receiver.requests) - len(ids)
    assert 0 <= duplicates <= held, f"{duplicates} sent again, more than the {held} held"
