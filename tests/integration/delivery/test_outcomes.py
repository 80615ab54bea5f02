"""What each answer leads to: success, retries on the schedule, giving up, 410, Retry-After,
and the attempts that replay and manual retry add."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime

from aiohttp import web

from support_delivery import Received, delivering, failing_first, settled
from support_process import wait_for


def seconds(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def test_retries_until_success_with_the_history_kept(tenant, subscribed, receiver):
    receiver.answer = failing_first(2)
    with delivering():
        sent = tenant.send()
        attempts = settled(tenant, sent["id"], 3)
    assert [(a["try_number"], a["trigger"], a["status"]) for a in attempts] == [
        (1, "event", "failed"),
        (2, "retry", "failed"),
        (3, "retry", "succeeded"),
    ]
    assert [a["response"]["status_code"] for a in attempts] == [500, 500, 200]
    assert attempts[0]["response"]["body"] == "not yet"
    # Fast retries: 50 ms, then doubled (no jitter in tests).
    assert seconds(attempts[0]["finished_at"], attempts[1]["due_at"]) >= 0.05
    assert seconds(attempts[1]["finished_at"], attempts[2]["due_at"]) >= 0.1
    # Every try of the event carries the same webhook-id and a valid signature.
    assert [r.webhook_id for r in receiver.requests] == [sent["id"]] * 3
    assert all(r.verify(subscribed["secret"]) for r in receiver.requests)


def test_gives_up_once_the_budget_is_spent(tenant, subscribed, receiver):
    receiver.answer = lambda received: web.Response(status=503)
    with delivering():
        sent = tenant.send()
        # 1 try + 3 fast retries + 1 slow one (the test budget).
        attempts = settled(tenant, sent["id"], 5)
        assert [a["status"] for a in attempts] == ["failed"] * 4 + ["gave_up"]
        assert seconds(attempts[3]["finished_at"], attempts[4]["due_at"]) >= 0.3

        # A manual retry beyond the budget is one more try, and no more.
        retried = tenant.post(f"/attempts/{attempts[-1]['id']}/retry")
        assert retried.status_code == 202, retried.text
        attempts = settled(tenant, sent["id"], 6)
    assert (attempts[-1]["trigger"], attempts[-1]["try_number"]) == ("manual", 6)
    assert attempts[-1]["status"] == "gave_up"
    assert len(receiver.requests) == 6


def test_a_failed_manual_retry_is_retried_on_the_schedule(tenant, subscribed, receiver):
    with delivering():
        sent = tenant.send()
        (first,) = settled(tenant, sent["id"], 1)
        receiver.answer = failing_first(1)
        assert tenant.post(f"/attempts/{first['id']}/retry").status_code == 202
        attempts = settled(tenant, sent["id"], 3)
    assert [(a["trigger"], a["try_number"], a["status"]) for a in attempts] == [
        ("event", 1, "succeeded"),
        ("manual", 2, "failed"),
        ("retry", 3, "succeeded"),
    ]


def test_410_disables_the_subscription(tenant, subscribed, receiver):
    receiver.answer = lambda received: web.Response(status=410, text="gone")
    with delivering():
        sent = tenant.send()
        (attempt,) = settled(tenant, sent["id"], 1)
    assert attempt["status"] == "gave_up"
    assert attempt["response"]["status_code"] == 410
    subscription = tenant.get(f"/subscriptions/{subscribed['id']}").json()
    assert subscription["enabled"] is False
    assert "410" in subscription["disabled_reason"]
    assert tenant.send()["attempts_created"] == 0
    assert len(receiver.requests) == 1


def test_attempts_of_a_disabled_subscription_are_not_sent(tenant, subscribed, receiver):
    sent = tenant.send()
    assert tenant.patch(f"/subscriptions/{subscribed['id']}", {"enabled": False}).status_code == 200
    with delivering():
        (attempt,) = settled(tenant, sent["id"], 1)
    assert attempt["status"] == "gave_up"
    assert attempt["error"] == "subscription disabled"
    assert receiver.requests == []


def test_retry_after_is_waited_for(tenant, subscribed, receiver, env):
    env(HOOKPOST_RETRY_SLOW_S="5")
    receiver.answer = failing_first(1, status=429, headers={"Retry-After": "1"})
    with delivering():
        sent = tenant.send()
        first, second = settled(tenant, sent["id"], 2)
    assert first["response"]["status_code"] == 429
    assert seconds(first["finished_at"], second["due_at"]) >= 1
    assert second["status"] == "succeeded"
    assert receiver.requests[1].at - receiver.requests[0].at >= 1


def test_replay_and_manual_retry_are_delivered(tenant, subscribed, receiver):
    with delivering():
        sent = tenant.send()
        (first,) = settled(tenant, sent["id"], 1)
        replayed = tenant.post(f"/events/{sent['id']}/replay")
        assert replayed.status_code == 202, replayed.text
        assert replayed.json()["attempts_created"] == 1
        settled(tenant, sent["id"], 2)
        assert tenant.post(f"/attempts/{first['id']}/retry").status_code == 202
        attempts = settled(tenant, sent["id"], 3)
    assert [(a["trigger"], a["try_number"], a["status"]) for a in attempts] == [
        ("event", 1, "succeeded"),
        ("replay", 1, "succeeded"),
        ("manual", 2, "succeeded"),
    ]
    # The same webhook-id every time, so the receiver can tell it is the same event.
    assert [r.webhook_id for r in receiver.requests] == [sent["id"]] * 3


def test_a_subscription_deleted_while_its_attempt_is_on_the_wire(tenant, subscribed, receiver):
    deleted = threading.Event()

    async def answer_once_deleted(received: Received) -> web.Response:
        # The receiver answers (a failure, which would schedule a retry) only once the
        # subscription, and with it the attempt, is gone.
        await asyncio.get_running_loop().run_in_executor(None, deleted.wait, 10)
        return web.Response(status=500)

    receiver.answer = answer_once_deleted
    with delivering() as (worker,):
        sent = tenant.send()
        wait_for(lambda: receiver.requests, timeout=10, what="the request")
        assert tenant.delete(f"/subscriptions/{subscribed['id']}").status_code == 204
        deleted.set()
    # Stopping let the request finish and recorded it: nothing was left to record.
    assert tenant.get(f"/events/{sent['id']}").json()["attempts"] == []
    assert worker.summary.failed == 0
