"""The deliver loop: claim due attempts, send them concurrently, record the outcomes in batches.

Claims are pipelined: as requests finish, slots free up and the next batch is claimed while
the rest are still on the wire, so one slow receiver never holds up the others. Outcomes are
recorded by one flusher as a group commit: whatever finished while the previous statement ran
goes in the next one. Database work runs in worker threads on the shared pool (short
autocommit statements), never holding a transaction across a request.

Three ways to run it: `make dev` in a thread, woken by LISTEN/NOTIFY (`start_in_thread`);
`hookpost deliver` in the foreground until SIGTERM or Ctrl-C (`run_until_signalled`); the
deliver Lambda until shortly before its deadline, polling only, since LISTEN would pin an RDS
Proxy connection (`run_for_lambda`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import psycopg

from hookpost.config import Settings, get_settings
from hookpost.db import queries
from hookpost.db.pool import DatabaseUnavailable, connection, connection_kwargs
from hookpost.delivery import claims
from hookpost.delivery.schedule import SUCCEEDED, RetryPolicy, decide
from hookpost.delivery.sender import Outcome, Sender

log = logging.getLogger("hookpost.delivery")

T = TypeVar("T")

_DB_ERRORS = (DatabaseUnavailable, psycopg.Error)
# Kept free at the end of a Lambda invocation for the last records and the return.
_CLOSE_MARGIN_S = 2.0
# How many times a batch of outcomes whose statement fails (not the connection) is tried.
_RECORD_TRIES = 3
# The shortest wait for a subscription's turn between claims.
_MIN_WAIT_S = 0.01
# How soon a loop looks again at a subscription that was ready but yielded nothing.
_BUSY_WAIT_S = 0.02


@dataclass
class Summary:
    """What one run of the loop did (attempts counted as recorded in the database)."""

    claimed: int = 0
    succeeded: int = 0
    failed: int = 0
    gave_up: int = 0
    expired: int = 0
    released: int = 0
    recovered: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Worker:
    """One deliver loop. `run()` it in an event loop; `stop()` it from anywhere."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        listen: bool,
        claim_until: float | None = None,
        grace_s: float | None = None,
        on_delivered: Callable[[int], None] | None = None,
        until_idle: bool = False,
    ) -> None:
        """listen: wait for NOTIFY between polls. claim_until: a time.monotonic() after which
        nothing more is claimed. until_idle: stop once nothing is due and nothing is in flight
        (a run woken for new work, as opposed to a scheduled one). grace_s: how long a stopping
        loop lets requests on the wire finish before it cancels them and releases their
        attempts. on_delivered: called with each success's latency, in ms from the attempt
        falling due to the receiver's answer."""
        settings = settings or get_settings()
        self._settings = settings.delivery
        self._allow_private = settings.allow_private_targets
        self._database_url = settings.database_url
        self._policy = RetryPolicy.from_settings(self._settings)
        self._listen = listen
        self._claim_until = claim_until
        self._until_idle = until_idle
        self._grace_s = self._settings.stop_grace_s if grace_s is None else grace_s
        self._on_delivered = on_delivered
        self._batch = max(1, min(self._settings.batch_size, self._settings.concurrency))
        # Under a backlog, claim only once this many slots are free, so claims stay batches.
        self._refill_at = max(1, self._batch // 2)
        self.summary = Summary()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested = False
        # Each request in flight, with the attempt, claim and subscription it serves.
        self._in_flight: dict[asyncio.Task[None], tuple[uuid.UUID, uuid.UUID, uuid.UUID]] = {}
        # No subscription takes more than this many of the loop's slots (at least one).
        self._share = max(1, int(self._settings.concurrency * self._settings.subscription_share))
        self._last_claim_empty = False
        # Set by a NOTIFY or a poll: a fresh event may wait, to be claimed even under a backlog.
        self._maybe_fresh = True
        # Outcomes not yet recorded, in DELIVERY_RECORD's recordset shape.
        self._results: list[dict[str, Any]] = []
        self._more_due = True
        # Counts NOTIFYs, so one that arrives while a claim is under way is not lost when that
        # claim (which may have started before the new attempts were committed) finds nothing.
        self._notifications = 0
        self._drained = True
        self._closing = False
        self._record_failures = 0
        # Seconds from the last claim until another subscription's turn (None: none is waiting).
        self._next_ready_s: float | None = None
        # Completion order of outcomes: a subscription's failure streak counts from its last
        # success in this order.
        self._completed = 0

    def stop(self) -> None:
        """Stop claiming, finish or release what is held, and return from run(). Thread-safe."""
        self._stop_requested = True
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to wake
                loop.call_soon_threadsafe(self._on_stop)

    async def run(self) -> Summary:
        self._loop = asyncio.get_running_loop()
        # Set when a claim may find work: a NOTIFY, a free slot, a recorded batch, a stop.
        self._kick = asyncio.Event()
        self._stopped = asyncio.Event()
        self._to_flush = asyncio.Event()
        sender = Sender(self._settings, allow_private=self._allow_private)
        flusher = asyncio.create_task(self._flush_forever())
        listener = asyncio.create_task(self._listen_forever()) if self._listen else None
        try:
            await self._claim_forever(sender)
        finally:
            await self._close(sender, flusher, listener)
        log.info("deliver loop stopped: %s", self.summary.as_dict(), extra=self.summary.as_dict())
        return self.summary

    # Claiming

    def _stopping(self) -> bool:
        idle = self._drained and not self._more_due and not self._in_flight
        return (
            self._stop_requested
            or (self._until_idle and idle)
            or (self._claim_until is not None and time.monotonic() >= self._claim_until)
        )

    def _on_stop(self) -> None:
        self._stopped.set()
        self._kick.set()

    def _wants_claim(self) -> bool:
        free = self._settings.concurrency - len(self._in_flight)
        # Recording lags (the database is slow or down): take on no more until it catches up.
        if free <= 0 or len(self._results) >= 2 * self._batch:
            return False
        # Someone's fresh event may be waiting (a NOTIFY, or the poll): take it at once, even
        # under a backlog; fairness in the claim gives it a slot.
        if self._maybe_fresh:
            return True
        # Nothing was claimable although a subscription is ready (this loop holds its share,
        # or another claim holds it): an answer or the poll changes that, a free slot does not.
        if not self._more_due or self._last_claim_empty:
            return False
        # With the queue drained, take whatever arrives at once: a new event goes out within
        # milliseconds. Under a backlog, wait for a worthwhile batch.
        return free >= self._refill_at or self._drained or not self._in_flight

    async def _claim_forever(self, sender: Sender) -> None:
        next_recovery = time.monotonic()
        while not self._stopping():
            if time.monotonic() >= next_recovery:
                next_recovery = time.monotonic() + self._settings.recover_s
                await self._recover()
            if self._wants_claim():
                await self._claim(sender)
                continue
            self._kick.clear()
            timeout = min(self._settings.poll_s, next_recovery - time.monotonic())
            if self._next_ready_s:
                # Held subscriptions (a rate, a Retry-After, a circuit's probe) come due without
                # a NOTIFY.
                timeout = min(timeout, max(self._next_ready_s, _MIN_WAIT_S))
            elif self._last_claim_empty and self._next_ready_s == 0:
                # Ready, yet nothing came: this loop holds that subscription's share, or another
                # transaction held its row for a moment (a record making it ready, another
                # claim). Look again shortly rather than at the next poll.
                timeout = min(timeout, _BUSY_WAIT_S)
            if self._claim_until is not None:
                timeout = min(timeout, self._claim_until - time.monotonic())
            try:
                await asyncio.wait_for(self._kick.wait(), max(timeout, 0.0))
            except TimeoutError:
                # The polling fallback: retries come due unannounced, and on Lambda new events too.
                self._more_due = True
                self._maybe_fresh = True

    async def _claim(self, sender: Sender) -> None:
        claim_id = uuid.uuid4()
        want = min(self._settings.concurrency - len(self._in_flight), self._batch)
        notifications = self._notifications
        self._maybe_fresh = False
        try:
            claimed = await _db(
                claims.claim,
                claim_id,
                want,
                self._settings.lease_s,
                share=self._share,
                holding=collections.Counter(sub for _, _, sub in self._in_flight.values()),
            )
        except _DB_ERRORS:
            log.warning("claim failed, retrying in %g s", self._settings.poll_s, exc_info=True)
            await self._pause(self._settings.poll_s)
            return
        rows = claimed.attempts
        self._next_ready_s = claimed.next_ready_s
        self._last_claim_empty = not rows
        # Fewer than asked with a subscription still ready: it was capped (this loop's share of
        # it, its limits), not drained.
        self._drained = len(rows) < want and claimed.next_ready_s != 0
        self._more_due = not self._drained or self._notifications != notifications
        self.summary.claimed += len(rows)
        for row in rows:
            # Settled by the claim itself: the subscription is disabled, or the event expired.
            if row["status"] == "gave_up":
                self.summary.gave_up += 1
                continue
            if row["status"] == "expired":
                self.summary.expired += 1
                continue
            task = asyncio.create_task(self._deliver(sender, row, claim_id))
            self._in_flight[task] = (row["id"], claim_id, row["subscription_id"])
            task.add_done_callback(self._delivered)

    async def _recover(self) -> None:
        try:
            recovered = await _db(claims.recover_expired_leases)
            self.summary.expired += await _db(claims.expire)
            if await _db(claims.resync_ready):
                self._more_due = True
        except _DB_ERRORS as exc:
            log.warning("lease recovery failed: %s", exc)
            return
        if recovered:
            log.info("recovered %d attempts whose lease expired", recovered)
            self.summary.recovered += recovered
            self._more_due = True

    async def _pause(self, seconds: float) -> None:
        """Sleep, unless stopped meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), seconds)

    # Sending

    async def _deliver(self, sender: Sender, attempt: dict[str, Any], claim_id: uuid.UUID) -> None:
        outcome = await sender.send(attempt)
        result = self._result(attempt, claim_id, outcome)
        self._results.append(result)
        self._to_flush.set()
        if self._on_delivered is not None and result["status"] == SUCCEEDED:
            self._on_delivered(attempt["waited_ms"] + outcome.elapsed_ms)

    def _result(
        self, attempt: dict[str, Any], claim_id: uuid.UUID, outcome: Outcome
    ) -> dict[str, Any]:
        decision = decide(
            attempt["try_number"],
            outcome.status_code,
            self._policy,
            retry_after_s=outcome.retry_after_s,
        )
        self._completed += 1
        # One line per outcome, which `hookpost dev` prints (hookpost.local.dev); DEBUG, so that
        # Lambda and `hookpost deliver` (INFO) stay quiet at thousands of deliveries a second.
        logging.getLogger("hookpost.delivery.outcome").debug(
            "attempt %s to %s: %s, %s, %d ms",
            attempt["id"],
            attempt["url"],
            decision.status,
            outcome.status_code or outcome.error,
            outcome.elapsed_ms,
        )
        return {
            "id": attempt["id"],
            "claim_id": claim_id,
            "status": decision.status,
            "response_status": outcome.status_code,
            "response_headers": outcome.headers,
            "response_body": outcome.body,
            "elapsed_ms": outcome.elapsed_ms,
            "error": outcome.error,
            "retry_in_s": decision.retry_in_s,
            "disable": decision.disable_subscription,
            "ord": self._completed,
            "failure": decision.counts_against_circuit,
            "throttled": outcome.status_code == 429,
            "pause_s": decision.pause_s,
        }

    def _delivered(self, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(task, None)
        self._last_claim_empty = False  # a share freed up
        if not task.cancelled() and task.exception() is not None:
            # A bug, not a receiver's doing: the attempt stays in flight until its lease
            # expires and it is delivered again.
            log.error("delivery task failed", exc_info=task.exception())
        if self._wants_claim():
            self._kick.set()

    # Recording

    async def _flush_forever(self) -> None:
        give_up_at: float | None = None
        while True:
            await self._to_flush.wait()
            self._to_flush.clear()
            if await self._flush():
                if self._closing:
                    return
                continue
            if self._closing:
                give_up_at = give_up_at or time.monotonic() + _CLOSE_MARGIN_S
                if time.monotonic() >= give_up_at:
                    log.error(
                        "%d outcomes not recorded; their attempts are delivered again once "
                        "their lease expires",
                        len(self._results),
                    )
                    return
            await asyncio.sleep(min(self._settings.poll_s, 1.0))
            self._to_flush.set()

    async def _flush(self) -> bool:
        """Record every outcome collected, a batch per statement; False when the database
        failed (they are kept and tried again)."""
        while self._results:
            batch = self._results[: self._batch]
            try:
                counts = await _db(claims.record, batch, self._settings.circuit)
            except DatabaseUnavailable as exc:  # unreachable, or a deadlock: try again
                log.warning("recording %d outcomes failed: %s", len(batch), exc)
                return False
            except psycopg.Error:
                # The statement itself failed (a subscription deleted meanwhile, say): a retry
                # usually passes, but a batch that keeps failing is dropped rather than block
                # every later one. Its attempts are delivered again once their lease expires.
                self._record_failures += 1
                if self._record_failures < _RECORD_TRIES:
                    log.warning("recording %d outcomes failed", len(batch), exc_info=True)
                    return False
                log.exception("recording %d outcomes failed again: dropped", len(batch))
                counts = {}
            self._record_failures = 0
            del self._results[: len(batch)]
            self.summary.succeeded += counts.get("succeeded", 0)
            self.summary.failed += counts.get("failed", 0)
            self.summary.gave_up += counts.get("gave_up", 0)
            if self._wants_claim():
                self._kick.set()
        return True

    # Stopping

    async def _close(
        self, sender: Sender, flusher: asyncio.Task[None], listener: asyncio.Task[None] | None
    ) -> None:
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        if self._in_flight:
            await asyncio.wait(list(self._in_flight), timeout=self._grace_s)
        unfinished = dict(self._in_flight)
        for task in unfinished:
            task.cancel()
        if unfinished:
            await asyncio.wait(list(unfinished))
            await self._release(list(unfinished.values()))
        await sender.close()
        self._closing = True
        self._to_flush.set()
        await flusher

    async def _release(self, held: list[tuple[uuid.UUID, uuid.UUID, uuid.UUID]]) -> None:
        attempt_ids = [attempt_id for attempt_id, _, _ in held]
        claim_ids = list({claim_id for _, claim_id, _ in held})
        try:
            self.summary.released += await _db(claims.release, claim_ids, attempt_ids)
        except _DB_ERRORS as exc:
            log.warning(
                "releasing %d attempts failed (their leases will expire): %s", len(held), exc
            )

    # Waking up

    async def _listen_forever(self) -> None:
        """Kick the loop on every NOTIFY; reconnect when the connection drops (polling covers
        the gap)."""
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._database_url, **connection_kwargs()
                ) as conn:
                    await conn.execute(queries.DELIVERY_LISTEN)
                    self._notified()  # whatever arrived while not listening
                    async for _ in conn.notifies():
                        self._notified()
            except psycopg.Error as exc:
                log.warning("LISTEN connection lost, polling meanwhile: %s", exc)
            await asyncio.sleep(max(self._settings.poll_s, 1.0))

    def _notified(self) -> None:
        self._notifications += 1
        self._more_due = True
        self._maybe_fresh = True
        self._kick.set()


async def _db(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run fn(conn, *args, **kwargs) on a pooled connection in a worker thread."""

    def call() -> T:
        with connection() as conn:
            return fn(conn, *args, **kwargs)

    return await asyncio.to_thread(call)


def start_in_thread(stop: threading.Event) -> threading.Thread:
    """A LISTENing deliver loop in a thread, until `stop` is set (`make dev`); join it after."""
    worker = Worker(listen=True)

    def run() -> None:
        try:
            asyncio.run(worker.run())
        except Exception:
            log.exception("deliver loop crashed")

    thread = threading.Thread(target=run, name="hookpost-deliver", daemon=True)
    thread.start()
    # threading.Event has no callback; this thread turns `stop` into worker.stop().
    threading.Thread(
        target=lambda: (stop.wait(), worker.stop()), name="hookpost-deliver-stop", daemon=True
    ).start()
    return thread


def run_until_signalled() -> Summary:
    """A LISTENing deliver loop in the foreground until SIGTERM or SIGINT (`hookpost deliver`)."""
    worker = Worker(listen=True)

    async def main() -> Summary:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, worker.stop)
        return await worker.run()

    return asyncio.run(main())


def run_for_lambda(
    remaining_ms: Callable[[], int],
    on_delivered: Callable[[int], None] | None = None,
    *,
    until_idle: bool = False,
) -> Summary:
    """Deliver until shortly before the invocation's deadline (or, with until_idle, until
    nothing is due), then return what was done.

    Claiming stops early enough that every request claimed finishes within its timeout and is
    recorded before the deadline. on_delivered, until_idle: as for Worker.
    """
    settings = get_settings()
    reserve_s = settings.delivery.timeout_s + _CLOSE_MARGIN_S
    claim_until = time.monotonic() + remaining_ms() / 1000 - reserve_s
    if claim_until <= time.monotonic():
        log.warning(
            "less than the request timeout plus %g s left in this invocation: nothing claimed",
            _CLOSE_MARGIN_S,
        )
    worker = Worker(
        settings,
        listen=False,
        claim_until=claim_until,
        grace_s=settings.delivery.timeout_s,
        on_delivered=on_delivered,
        until_idle=until_idle,
    )
    return asyncio.run(worker.run())
