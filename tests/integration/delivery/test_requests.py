"""What a receiver sees (CONTRACT section 3): the signed request, and the limits on what
Hookpost does with the answer."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

from aiohttp import web

from hookpost.secrets_at_rest import generate_key
from support_delivery import attempts_of, delivering
from support_process import wait_for


def finished(tenant, event_id: str, count: int = 1) -> list[dict]:
    """Wait until `count` attempts of the event are recorded and none is still to go."""

    def done() -> bool:
        attempts = attempts_of(tenant, event_id)
        settled = [a for a in attempts if a["status"] not in ("pending", "in_flight")]
        return len(settled) >= count and len(settled) == len(attempts)

    wait_for(done, timeout=10, what=f"{count} settled attempts")
    return attempts_of(tenant, event_id)


def test_the_request_is_signed_standard_webhooks(tenant, subscribed, receiver):
    occurred = "2025-03-04T05:06:07.123456Z"
    payload = {"invoice": "in_1", "amount": 4200, "note": "caf\u00e9 \u2603", "lines": [1, 2]}
    with delivering():
        sent = tenant.send(payload=payload, occurred_at=occurred)
        wait_for(lambda: receiver.requests, timeout=10, what="the delivery")
    (request,) = receiver.requests
    headers = request.headers
    assert request.path == "/hook"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("Hookpost/")
    assert headers["x-team"] == "billing"
    assert headers["webhook-id"] == sent["id"]
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 30
    assert len(headers["webhook-signature"].split(" ")) == 1
    body = request.verify(subscribed["secret"])
    assert body == {"type": "invoice.paid", "timestamp": occurred, "data": payload}
    assert json.loads(request.body) == body
    (attempt,) = finished(tenant, sent["id"])
    assert attempt["status"] == "succeeded" and attempt["trigger"] == "event"
    assert attempt["response"]["status_code"] == 200 and attempt["response"]["body"] == "ok"


def test_a_rotated_secret_signs_alongside_the_new_one(tenant, subscribed, receiver):
    old = subscribed["secret"]
    rotated = tenant.post(f"/subscriptions/{subscribed['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new != old
    with delivering():
        tenant.send()
        wait_for(lambda: receiver.requests, timeout=10, what="the delivery")
    (request,) = receiver.requests
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert request.verify(new) == request.verify(old)


def test_notify_wakes_the_loop_without_waiting_for_a_poll(tenant, subscribed, receiver, env):
    env(HOOKPOST_DELIVERY_POLL_S="60", HOOKPOST_DELIVERY_RECOVER_S="60")
    with delivering():
        first = tenant.send()
        wait_for(lambda: receiver.to(first["id"]), timeout=10, what="the first delivery")
        sent_at = time.monotonic()
        second = tenant.send()
        # The loop is idle in a 60 s poll wait now: only the NOTIFY can bring this in time.
        wait_for(lambda: receiver.to(second["id"]), timeout=5, what="the second delivery")
        (request,) = receiver.to(second["id"])
    assert request.at - sent_at < 5


def test_redirects_are_not_followed(tenant, subscribed, receiver, no_retries):
    receiver.answer = lambda received: web.Response(
        status=302 if received.path == "/hook" else 200,
        headers={"Location": f"http://127.0.0.1:{receiver.port}/elsewhere"},
    )
    with delivering():
        sent = tenant.send()
        first = finished(tenant, sent["id"])[0]
    assert first["status"] == "gave_up"
    assert first["response"]["status_code"] == 302
    assert first["error"] == "redirect not followed"
    assert all(r.path == "/hook" for r in receiver.requests)


def test_at_most_64_kib_of_the_response_is_kept(tenant, subscribed, receiver, no_retries):
    receiver.answer = lambda received: web.Response(
        status=500, text="x" * 300_000, headers={"X-Why": "overloaded"}
    )
    with delivering():
        sent = tenant.send()
        first = finished(tenant, sent["id"])[0]
    response = first["response"]
    assert response["status_code"] == 500
    assert response["body"] == "x" * 65536
    assert response["headers"]["x-why"] == "overloaded"
    assert response["elapsed_ms"] >= 0


def test_a_slow_receiver_times_out(tenant, subscribed, receiver, no_retries, env):
    env(HOOKPOST_DELIVERY_TIMEOUT_S="0.3")

    async def slow(received):
        await asyncio.sleep(5)
        return web.Response()

    receiver.answer = slow
    with delivering():
        sent = tenant.send()
        (attempt,) = finished(tenant, sent["id"])
    assert attempt["status"] == "gave_up"
    assert attempt["error"] == "timed out after 0.3 s"
    assert attempt["response"] is None


def test_private_targets_are_refused_at_send_time(tenant, receiver, no_retries, env):
    tenant.event_type("invoice.paid")
    # Accepted when created (private targets allowed then), refused when sent.
    by_name = tenant.subscription(url=f"http://localhost:{receiver.port}/hook")
    by_address = tenant.subscription(url=receiver.url)
    env(HOOKPOST_ALLOW_PRIVATE_TARGETS="false")
    with delivering():
        sent = tenant.send()
        attempts = finished(tenant, sent["id"], count=2)
    errors = {a["subscription_id"]: a["error"] for a in attempts}
    assert errors[by_name["id"]].startswith("refused: target host localhost resolves to non-public")
    assert errors[by_address["id"]] == "refused: target address 127.0.0.1 is not a public address"
    assert {a["status"] for a in attempts} == {"gave_up"}
    assert receiver.requests == []


def test_timestamp_is_rfc3339_utc(tenant, subscribed, receiver):
    with delivering():
        tenant.send(occurred_at="2025-03-04T06:06:07+01:00")
        wait_for(lambda: receiver.requests, timeout=10, what="the delivery")
    body = receiver.requests[0].verify(subscribed["secret"])
    assert body["timestamp"] == "2025-03-04T05:06:07Z"
    assert datetime.fromisoformat(body["timestamp"]).tzinfo == UTC


def test_a_secret_sealed_at_rest_signs_like_the_plain_one(tenant, receiver, no_retries, env):
    env(HOOKPOST_ENCRYPTION_KEY=generate_key())
    tenant.event_type("invoice.paid")
    subscription = tenant.subscription(url=receiver.url)
    with delivering():
        tenant.send()
        wait_for(lambda: receiver.requests, timeout=10, what="the delivery")
    assert receiver.requests[0].verify(subscription["secret"])

    # Without the key a sealed secret cannot be opened: nothing is sent unsigned. (A new
    # subscription: the loop keeps the keys it has opened.)
    tenant.patch(f"/subscriptions/{subscription['id']}", {"enabled": False})
    tenant.subscription(url=receiver.url)
    env(HOOKPOST_ENCRYPTION_KEY="")
    with delivering():
        sent = tenant.send()
        (attempt,) = finished(tenant, sent["id"])
    assert attempt["error"].startswith("cannot sign: ")
    assert len(receiver.requests) == 1
