"""Delivery test support: real HTTP receivers on loopback, and deliver loops in threads."""

from __future__ import annotations

import asyncio
import inspect
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
from aiohttp import web
from standardwebhooks import Webhook

from hookpost.delivery.loop import Summary, Worker
from support_process import wait_for


@dataclass
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    def verify(self, secret: str) -> object:
        """The payload, if the signature verifies with `secret` (the official library)."""
        return Webhook(secret).verify(self.body, self.headers)


Answer = web.StreamResponse | Awaitable[web.StreamResponse]


class Receiver:
    """An aiohttp server on 127.0.0.1 (a port of its own) in a thread; `answer(received)`
    decides each response (200 by default) and may be a coroutine function. With an
    `ssl_context`, it serves HTTPS."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl_context = ssl_context
        self.requests: list[Received] = []
        self.answer: Callable[[Received], Answer] = lambda received: web.Response(text="ok")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # Slow answers still running at the end are cancelled rather than waited for.
        self._runner = web.AppRunner(app, shutdown_timeout=0.1, access_log=None)
        self.port = 0

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    async def _start(self) -> None:
        await self._runner.setup()
        # A deep accept queue: four loops open up to 400 connections at once, and a SYN dropped
        # from a full queue is sent again only after 1 s, the tests' connect timeout.
        site = web.TCPSite(
            self._runner, "127.0.0.1", 0, backlog=1024, ssl_context=self._ssl_context
        )
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _stop(self) -> None:
        await self._runner.cleanup()
        # Answers still sleeping (a slow receiver) end here, not when the loop is collected.
        rest = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        received = Received(
            request.path, {k.lower(): v for k, v in request.headers.items()}, await request.read()
        )
        self.requests.append(received)
        answer = self.answer(received)
        return await answer if inspect.isawaitable(answer) else answer

    def to(self, webhook_id: str) -> list[Received]:
        return [r for r in self.requests if r.webhook_id == webhook_id]


class Slow:
    """A receiver's answer after `delay_s`, noting how many requests are on the wire at once."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.in_flight = 0
        self.most_in_flight = 0

    async def __call__(self, received: Received) -> web.Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.in_flight -= 1
        return web.Response(text="ok")


def send_batches(tenant, count: int) -> list[dict]:
    """`count` invoice.paid events through the batch endpoint, 500 a request; their results."""
    results = []
    for first in range(0, count, 500):
        events = [
            {"event_type": "invoice.paid", "payload": {"n": n}}
            for n in range(first, min(first + 500, count))
        ]
        response = tenant.post("/events/batch", {"events": events})
        assert response.status_code == 202, response.text
        results += response.json()["data"]
    return results


def count_attempts(tenant, status: str) -> int:
    """How many of the tenant's attempts have `status`, every page read."""
    total, cursor = 0, None
    while True:
        params = {"status": status, "limit": 200, **({"cursor": cursor} if cursor else {})}
        response = tenant.get("/attempts", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        total += len(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            return total


def unsettled(tenant) -> int:
    """How many of the tenant's attempts are still to go: pending or in flight."""
    return count_attempts(tenant, "pending") + count_attempts(tenant, "in_flight")


def failing_first(times: int, status: int = 500, headers: dict[str, str] | None = None):
    """A receiver's answer that fails the first `times` requests (`status`, `headers`), then
    succeeds."""
    seen: list[Received] = []

    def answer(received: Received) -> web.Response:
        seen.append(received)
        if len(seen) <= times:
            return web.Response(status=status, headers=headers, text="not yet")
        return web.Response(text="thanks")

    return answer


def failing_while_down(receiver: Receiver) -> threading.Event:
    """The receiver answers 500 while the returned event is set (it starts set), 200 after."""
    down = threading.Event()
    down.set()
    receiver.answer = lambda received: web.Response(status=500 if down.is_set() else 200)
    return down


def health_of(tenant, subscription: dict) -> dict:
    """The subscription's health as the API shows it."""
    response = tenant.get(f"/subscriptions/{subscription['id']}")
    assert response.status_code == 200, response.text
    return response.json()["health"]


def attempts_of(tenant, event_id: str) -> list[dict]:
    """The event's attempts, in try order."""
    response = tenant.get(f"/events/{event_id}")
    assert response.status_code == 200, response.text
    return response.json()["attempts"]


def settled(tenant, event_id: str, count: int = 1) -> list[dict]:
    """The event's attempts, once there are `count` and none is still to go."""

    def done() -> bool:
        attempts = attempts_of(tenant, event_id)
        return len(attempts) == count and all(
            a["status"] not in ("pending", "in_flight") for a in attempts
        )

    wait_for(done, timeout=20, what=f"{count} settled attempts")
    return attempts_of(tenant, event_id)


def settle_strays(database_url: str) -> None:
    """Give up every attempt other tests left pending or in flight, so that the deliver loops
    of a test send only what that test sends (and never to the addresses others made up)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE attempts SET status = 'gave_up', error = 'settled by the delivery tests'"
            " WHERE status IN ('pending', 'in_flight')"
        )


@contextmanager
def delivering(count: int = 1) -> Iterator[list[Worker]]:
    """`count` LISTENing deliver loops in threads, with the settings of the moment; stopped,
    and checked to have stopped, on exit."""
    workers = [Worker(listen=True) for _ in range(count)]
    summaries: list[Summary] = []
    threads = [
        threading.Thread(target=lambda w=worker: summaries.append(asyncio.run(w.run())))
        for worker in workers
    ]
    for thread in threads:
        thread.start()
    try:
        yield workers
    finally:
        for worker in workers:
            worker.stop()
        for thread in threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in threads), "a deliver loop did not stop"
        assert len(summaries) == count, "a deliver loop failed"
