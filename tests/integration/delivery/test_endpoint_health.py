"""Endpoint health: the circuit breaker of each subscription, its health in the API, and the
operational webhooks it raises, all against real receivers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

import pytest
from aiohttp import web

from support_delivery import Receiver, attempts_of, delivering, failing_while_down, health_of
from support_process import wait_for


@pytest.fixture
def watcher() -> Iterator[Receiver]:
    """A second receiver, for operational events."""
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


def operational(tenant, watcher: Receiver, *event_types: str) -> dict:
    return tenant.subscription(url=watcher.url, event_types=list(event_types))


def test_a_failing_receiver_opens_the_circuit_holds_attempts_and_a_probe_closes_it(
    tenant, subscribed, receiver, watcher, env
):
    env(HOOKPOST_CIRCUIT_FAILURES="3", HOOKPOST_CIRCUIT_COOLDOWN_S="0.5")
    watch = operational(tenant, watcher, "hookpost.circuit.opened")
    down = failing_while_down(receiver)
    with delivering():
        events = [tenant.send() for _ in range(3)]
        wait_for(lambda: health_of(tenant, subscribed)["circuit"] == "open", what="an open circuit")
        opened = health_of(tenant, subscribed)
        assert opened["open_since"] is not None and opened["failure_streak"] >= 3
        before_probe = len(receiver.requests)
        # After the cool-down, exactly one probe; it fails, and the circuit opens again for
        # twice as long.
        wait_for(lambda: len(receiver.requests) > before_probe, what="the probe")
        wait_for(
            lambda: health_of(tenant, subscribed)["probe_at"] not in (None, opened["probe_at"]),
            what="the circuit re-opened",
        )
        reopened = health_of(tenant, subscribed)
        assert reopened["circuit"] == "open"
        assert reopened["open_since"] == opened["open_since"]
        assert len(receiver.requests) == before_probe + 1
        cooldown = datetime.fromisoformat(reopened["probe_at"]) - datetime.fromisoformat(
            opened["probe_at"]
        )
        assert cooldown.total_seconds() >= 0.9
        # Held attempts burnt no retry budget: none gave up while the circuit was open.
        held = [a for e in events for a in attempts_of(tenant, e["id"])]
        assert not [a for a in held if a["status"] == "gave_up"]
        assert [a for a in held if a["status"] == "pending"]

        down.clear()
        wait_for(
            lambda: all(attempts_of(tenant, e["id"])[-1]["status"] == "succeeded" for e in events),
            timeout=20,
            what="every event delivered once the receiver is back",
        )
    closed = health_of(tenant, subscribed)
    assert (closed["circuit"], closed["open_since"], closed["failure_streak"]) == (
        "closed",
        None,
        0,
    )
    assert closed["recent"]["success_rate"] is not None

    # One operational event, signed like any other, about the subscription that opened; the
    # subscription to `*` got none of them.
    (opened_event,) = watcher.requests
    payload = opened_event.verify(watch["secret"])
    assert payload["type"] == "hookpost.circuit.opened"
    assert payload["data"]["subscription_id"] == subscribed["id"]
    assert {json.loads(r.body)["type"] for r in receiver.requests} == {"invoice.paid"}


def test_a_high_failure_ratio_opens_the_circuit_without_a_streak(
    tenant, subscribed, receiver, no_retries, env
):
    env(
        HOOKPOST_CIRCUIT_FAILURES="1000",
        HOOKPOST_CIRCUIT_MIN_REQUESTS="6",
        HOOKPOST_CIRCUIT_FAILURE_RATIO="0.5",
        HOOKPOST_CIRCUIT_COOLDOWN_S="60",
    )
    receiver.answer = lambda received: web.Response(
        status=500 if len(receiver.requests) % 2 else 200
    )
    with delivering():
        for _ in range(8):
            event = tenant.send()
            # Recorded, not only sent: the record is what may open the circuit, and an event
            # sent after it opened would be held for the whole cool-down.
            wait_for(
                lambda e=event: (
                    attempts_of(tenant, e["id"])[-1]["status"] not in ("pending", "in_flight")
                )
            )
            if health_of(tenant, subscribed)["circuit"] == "open":
                break
        wait_for(lambda: health_of(tenant, subscribed)["circuit"] == "open", what="an open circuit")
    assert health_of(tenant, subscribed)["failure_streak"] <= 1


def test_giving_up_and_a_410_raise_operational_events(
    tenant, subscribed, receiver, watcher, no_retries
):
    watch = operational(
        tenant, watcher, "hookpost.attempt.gave_up", "hookpost.subscription.disabled"
    )
    receiver.answer = lambda received: web.Response(status=500)
    with delivering():
        failed = tenant.send()
        wait_for(lambda: len(watcher.requests) == 1, what="hookpost.attempt.gave_up")
        receiver.answer = lambda received: web.Response(status=410)
        tenant.send()
        # The 410 gives its attempt up too: one event of each kind.
        wait_for(lambda: len(watcher.requests) == 3, what="the 410's operational events")
    payloads = [r.verify(watch["secret"]) for r in watcher.requests]
    gave_up = payloads[0]
    assert gave_up["type"] == "hookpost.attempt.gave_up"
    (attempt,) = attempts_of(tenant, failed["id"])
    assert gave_up["data"]["attempt_id"] == attempt["id"]
    assert gave_up["data"]["event_id"] == failed["id"]
    assert gave_up["data"]["response_status"] == 500
    assert sorted(p["type"] for p in payloads[1:]) == [
        "hookpost.attempt.gave_up",
        "hookpost.subscription.disabled",
    ]
    disabled = next(p for p in payloads if p["type"] == "hookpost.subscription.disabled")
    assert disabled["data"]["subscription_id"] == subscribed["id"]
    # Operational events are events of the application like any other.
    listed = tenant.get("/events", params={"event_type": "hookpost.subscription.disabled"})
    disabled_request = next(r for r in watcher.requests if b"subscription.disabled" in r.body)
    assert [e["id"] for e in listed.json()["data"]] == [disabled_request.webhook_id]


def test_an_operational_receiver_that_is_down_does_not_feed_itself(
    tenant, subscribed, receiver, no_retries
):
    tenant.subscription(url=receiver.url, event_types=["hookpost.attempt.gave_up"])
    receiver.answer = lambda received: web.Response(status=500)
    with delivering():
        tenant.send()
        # The event's attempt gives up, then the operational event's; that one raises nothing.
        wait_for(lambda: len(receiver.requests) == 2, what="both attempts")
        wait_for(
            lambda: not tenant.get("/attempts", params={"status": "pending"}).json()["data"],
            what="nothing left to send",
        )
    types = [json.loads(r.body)["type"] for r in receiver.requests]
    assert sorted(types) == ["hookpost.attempt.gave_up", "invoice.paid"]


def test_a_manual_retry_probes_an_open_circuit_at_once(tenant, subscribed, receiver, env):
    env(HOOKPOST_CIRCUIT_FAILURES="2", HOOKPOST_CIRCUIT_COOLDOWN_S="600")
    down = failing_while_down(receiver)
    with delivering():
        events = [tenant.send() for _ in range(2)]
        wait_for(lambda: health_of(tenant, subscribed)["circuit"] == "open", what="an open circuit")
        down.clear()
        # Without the retry the next probe is ten minutes away.
        first_try = attempts_of(tenant, events[0]["id"])[0]
        assert tenant.post(f"/attempts/{first_try['id']}/retry").status_code == 202
        wait_for(
            lambda: all(attempts_of(tenant, e["id"])[-1]["status"] == "succeeded" for e in events),
            timeout=10,
            what="the held attempts delivered after the probe",
        )
    assert health_of(tenant, subscribed)["circuit"] == "closed"
