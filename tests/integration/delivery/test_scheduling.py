"""Scheduled send (`deliver_at`) and expiry (`expires_at`) through real deliver loops: nothing
goes out before its time, nothing after its expiry, and an attempt that could not be sent in
time ends `expired`, even while its subscription is held."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web

from support_delivery import Received, attempts_of, delivering, settled
from support_process import wait_for


def at(seconds_from_now: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds_from_now)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def parse(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp)


class Clocked:
    """A receiver answer that notes the wall-clock time of each request and answers `status`."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.times: list[datetime] = []

    def __call__(self, received: Received) -> web.Response:
        self.times.append(datetime.now(UTC))
        return web.Response(status=self.status, text="noted")


def ended(tenant, event_id: str) -> list[dict]:
    """The event's attempts once one has expired and none is still to go."""

    def done() -> bool:
        attempts = attempts_of(tenant, event_id)
        return any(a["status"] == "expired" for a in attempts) and all(
            a["status"] not in ("pending", "in_flight") for a in attempts
        )

    wait_for(done, timeout=10, what="an expired attempt and nothing left to go")
    return attempts_of(tenant, event_id)


def listed(tenant, status: str) -> set[str]:
    page = tenant.get("/attempts", params={"status": status, "limit": 200})
    assert page.status_code == 200, page.text
    assert page.json()["next_cursor"] is None
    return {a["id"] for a in page.json()["data"]}


def test_an_event_is_not_sent_before_deliver_at_and_soon_after(tenant, subscribed, receiver):
    clock = receiver.answer = Clocked()
    with delivering():
        deliver_at = at(1.0)
        sent = tenant.send(deliver_at=iso(deliver_at))
        (pending,) = attempts_of(tenant, sent["id"])
        assert pending["status"] == "pending"
        assert parse(pending["due_at"]) == deliver_at
        (attempt,) = settled(tenant, sent["id"], 1)
    assert attempt["status"] == "succeeded"
    (received_at,) = clock.times
    assert received_at >= deliver_at
    assert received_at - deliver_at < timedelta(seconds=0.5)
    assert tenant.get(f"/events/{sent['id']}").json()["deliver_at"] == pending["due_at"]


def test_deliver_at_is_kept_without_polling(tenant, subscribed, receiver, env):
    # An idle loop wakes for the next scheduled attempt itself, not on its poll.
    env(HOOKPOST_DELIVERY_POLL_S="30", HOOKPOST_DELIVERY_RECOVER_S="30")
    clock = receiver.answer = Clocked()
    with delivering():
        deliver_at = at(1.0)
        sent = tenant.send(deliver_at=iso(deliver_at))
        wait_for(lambda: clock.times, timeout=5, what="the scheduled delivery")
        settled(tenant, sent["id"], 1)
    (received_at,) = clock.times
    assert deliver_at <= received_at < deliver_at + timedelta(seconds=0.5)


def test_retries_stop_at_expiry_and_the_last_attempt_ends_expired(
    tenant, subscribed, receiver, env
):
    # Retries every 50-200 ms, far more of them than fit before the expiry; the breaker, which
    # would hold the subscription instead, stays out of the way.
    env(HOOKPOST_RETRY_FAST_COUNT="1000", HOOKPOST_CIRCUIT_FAILURES="1000")
    clock = receiver.answer = Clocked(status=500)
    with delivering():
        expires_at = at(1.0)
        sent = tenant.send(expires_at=iso(expires_at))
        attempts = ended(tenant, sent["id"])
    *tried, last = attempts
    assert len(tried) >= 3
    assert [a["status"] for a in tried] == ["failed"] * len(tried)
    assert (last["status"], last["response"]) == ("expired", None)
    assert expires_at <= parse(last["finished_at"]) < expires_at + timedelta(seconds=0.5)
    # One request per failed try, each claimed before the expiry; none after it.
    assert len(clock.times) == len(tried)
    assert all(parse(a["started_at"]) < expires_at for a in tried)
    assert all(t < expires_at + timedelta(seconds=0.1) for t in clock.times)
    assert listed(tenant, "expired") == {last["id"]}
    assert listed(tenant, "failed") == {a["id"] for a in tried}


def test_an_expired_event_can_still_be_retried_by_hand(tenant, subscribed, receiver, env):
    env(HOOKPOST_RETRY_FAST_COUNT="1000", HOOKPOST_CIRCUIT_FAILURES="1000")
    clock = receiver.answer = Clocked(status=500)
    with delivering():
        sent = tenant.send(expires_at=iso(at(0.5)))
        attempts = ended(tenant, sent["id"])
        clock.status = 200
        retried = tenant.post(f"/attempts/{attempts[-1]['id']}/retry")
        assert retried.status_code == 202, retried.text
        after = settled(tenant, sent["id"], len(attempts) + 1)
    assert (after[-1]["trigger"], after[-1]["status"]) == ("manual", "succeeded")
    assert len(clock.times) == len(attempts)


def test_a_held_subscription_s_attempt_expires_on_time(tenant, subscribed, receiver, env):
    # One failure opens the circuit, which stays open for the rest of the test.
    env(HOOKPOST_CIRCUIT_FAILURES="1", HOOKPOST_CIRCUIT_COOLDOWN_S="600")
    clock = receiver.answer = Clocked(status=500)
    health = f"/subscriptions/{subscribed['id']}"
    with delivering():
        opener = tenant.send()
        wait_for(
            lambda: tenant.get(health).json()["health"]["circuit"] == "open",
            timeout=5,
            what="the circuit to open",
        )
        expires_at = at(1.0)
        held = tenant.send(expires_at=iso(expires_at))
        wait_for(
            lambda: attempts_of(tenant, held["id"])[0]["status"] == "expired",
            timeout=5,
            what="the held attempt to expire",
        )
        # The opener, without an expiry, is still held: the circuit is what holds them.
        opener_attempts = attempts_of(tenant, opener["id"])
    (attempt,) = attempts_of(tenant, held["id"])
    assert attempt["response"] is None
    assert expires_at <= parse(attempt["finished_at"]) < expires_at + timedelta(seconds=0.6)
    assert [a["status"] for a in opener_attempts] == ["failed", "pending"]
    assert len(clock.times) == 1  # only the opener's first try was ever sent
    assert listed(tenant, "expired") == {attempt["id"]}
