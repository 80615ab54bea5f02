"""The deliver loop: claim due attempts, send them concurrently, hand the outcomes to the recorder.

The loop claims while it may, else waits for a wake-up, a timeout or a stop; `plan.next_step`
decides which, from a snapshot of what the loop observes, so this module only gathers that
snapshot and acts. Claims are pipelined: as requests finish, slots free up and the next batch is
claimed while the rest are still on the wire, so one slow receiver never holds up the others.
Outcomes are recorded by the recorder's one flusher as a group commit (delivery/recorder.py).
Database work runs in worker threads on the shared pool (short autocommit statements), never
holding a transaction across a request.

How the loop is run (`make dev`, `hookpost deliver`, the deliver Lambda) is delivery/runners.py.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, NamedTuple

import psycopg

from hookpost.config import Settings, get_settings
from hookpost.db import queries
from hookpost.db.pool import DatabaseUnavailable, connection_kwargs
from hookpost.delivery import claims
from hookpost.delivery.plan import (
    NO_CLAIM_YET,
    Claim,
    LastClaim,
    Limits,
    Observed,
    Recover,
    Stop,
    Wait,
    may_claim,
    next_step,
)
from hookpost.delivery.recorder import Recorder, Result
from hookpost.delivery.schedule import SUCCEEDED, RetryPolicy, decide
from hookpost.delivery.sender import Sender

log = logging.getLogger("hookpost.delivery")
# One line per outcome, which `hookpost dev` prints (hookpost.local.dev); DEBUG, so that Lambda
# and `hookpost deliver` (INFO) stay quiet at thousands a second.
outcome_log = logging.getLogger("hookpost.delivery.outcome")

_DB_ERRORS = (DatabaseUnavailable, psycopg.Error)
_RECORD_ROWS = 1000


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


class Held(NamedTuple):
    """A request on the wire: its attempts (the members of a batch, else one), the claim that
    leases them, the subscription they go to."""

    attempt_ids: tuple[uuid.UUID, ...]
    claim_id: uuid.UUID
    subscription_id: uuid.UUID


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
        self._limits = Limits.from_settings(
            self._settings, claim_until=claim_until, until_idle=until_idle
        )
        self._grace_s = self._settings.stop_grace_s if grace_s is None else grace_s
        self._on_delivered = on_delivered
        # No subscription takes more than this many of the loop's slots (at least one).
        self._share = max(1, int(self._settings.concurrency * self._settings.subscription_share))
        # Results a statement at most: a claim's batch of requests, or its members when they
        # are batches of events (each member is a row).
        self._recorder = Recorder(
            self._settings,
            batch=max(self._limits.batch, _RECORD_ROWS),
            on_recorded=self._recorded,
        )
        # Completion order of outcomes (Result.ord).
        self._completions = itertools.count(1)
        self.summary = Summary()
        self._loop: asyncio.AbstractEventLoop | None = None
        # Set when a claim may find work: a NOTIFY, a free slot, a recorded batch, a stop.
        self._wake = asyncio.Event()
        # Set by a stop only: what a pause after a failed claim waits for.
        self._stopped = asyncio.Event()

        # What changes while the loop runs; what next_step sees (with the recorder's backlog).
        self._stop_requested = False
        # Each request in flight, with what it holds; per-subscription holdings derive from it.
        self._in_flight: dict[asyncio.Task[None], Held] = {}
        # Set by a NOTIFY or a poll: a fresh event may wait, to be claimed even under a backlog.
        self._maybe_fresh = True
        self._more_due = True
        self._last_claim = NO_CLAIM_YET
        self._recover_at = -math.inf  # a loop starts with a recovery
        self._recorded_since_recovery = False

    def stop(self) -> None:
        """Stop claiming, finish or release what is held, and return from run(). Thread-safe."""
        self._stop_requested = True
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to wake
                loop.call_soon_threadsafe(self._on_stop)

    async def run(self) -> Summary:
        self._loop = asyncio.get_running_loop()
        sender = Sender(self._settings, allow_private=self._allow_private)
        flusher = asyncio.create_task(self._recorder.run())
        listener = asyncio.create_task(self._listen_forever()) if self._listen else None
        try:
            await self._work(sender)
        finally:
            await self._close(sender, flusher, listener)
        log.info("deliver loop stopped: %s", self.summary.as_dict(), extra=self.summary.as_dict())
        return self.summary

    async def _work(self, sender: Sender) -> None:
        """Claim while allowed, else wait for a wake-up, a timeout or a stop."""
        while True:
            match next_step(self._limits, self._observe()):
                case Stop():
                    return
                case Recover():
                    self._recorded_since_recovery = False
                    await self._recover()
                    # Counted from the end, so that a recovery slower than recover_s never
                    # crowds out the claims.
                    self._recover_at = time.monotonic() + self._settings.recover_s
                case Claim(want=want):
                    await self._claim(sender, want)
                case Wait(timeout_s=timeout_s):
                    await self._wait(timeout_s)

    def _observe(self) -> Observed:
        return Observed(
            now=time.monotonic(),
            in_flight=len(self._in_flight),
            results_pending=self._recorder.pending,
            maybe_fresh=self._maybe_fresh,
            more_due=self._more_due,
            last_claim=self._last_claim,
            recover_at=self._recover_at,
            stop_requested=self._stop_requested,
            recorded_since_recovery=self._recorded_since_recovery,
        )

    def _wake_if_claim_allowed(self) -> None:
        # Called for every answer: once woken, the loop looks for itself.
        if not self._wake.is_set() and may_claim(self._limits, self._observe()):
            self._wake.set()

    async def _wait(self, timeout_s: float) -> None:
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout_s)
        except TimeoutError:
            # The polling fallback: retries come due unannounced, and on Lambda new events too.
            self._more_due = True
            self._maybe_fresh = True

    def _on_stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    # Claiming

    async def _claim(self, sender: Sender, want: int) -> None:
        claim_id = uuid.uuid4()
        self._maybe_fresh = False
        try:
            claimed = await claims.on_pool(
                claims.claim,
                claim_id,
                want,
                self._settings.lease_s,
                share=self._share,
                holding=collections.Counter(
                    held.subscription_id for held in self._in_flight.values()
                ),
            )
        except _DB_ERRORS:
            log.warning("claim failed, retrying in %g s", self._settings.poll_s, exc_info=True)
            await self._pause(self._settings.poll_s)
            return
        rows = claimed.attempts
        requests = _requests(rows)
        settled = sum(row["status"] != "in_flight" for row in rows)
        self._last_claim = LastClaim.of(want, len(requests) + settled, claimed.next_ready)
        # A NOTIFY while the claim ran (it may have started before the new attempts were
        # committed) set maybe_fresh again: more may be due although the claim found nothing.
        self._more_due = not self._last_claim.drained or self._maybe_fresh
        self.summary.claimed += len(rows)
        # Settled by the claim itself: the subscription is disabled, or the event expired.
        self.summary.gave_up += sum(row["status"] == "gave_up" for row in rows)
        self.summary.expired += sum(row["status"] == "expired" for row in rows)
        for request in requests:
            task = asyncio.create_task(self._deliver(sender, request, claim_id))
            held = tuple(row["id"] for row in request)
            self._in_flight[task] = Held(held, claim_id, request[0]["subscription_id"])
            task.add_done_callback(self._delivered)

    async def _recover(self) -> None:
        try:
            recovered = await claims.on_pool(claims.recover_expired_leases)
            self.summary.expired += await claims.on_pool(claims.expire)
            if await claims.on_pool(claims.resync_ready):
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

    async def _deliver(
        self, sender: Sender, attempts: list[dict[str, Any]], claim_id: uuid.UUID
    ) -> None:
        """One request: a single attempt, or a batch, which succeeds or fails as a whole (each
        member's next try follows its own try number)."""
        outcome = await sender.send(attempts)
        # One completion: a batch's members count once towards the circuit.
        ord = next(self._completions)
        for attempt in attempts:
            decision = decide(
                attempt["try_number"],
                outcome.status_code,
                self._policy,
                retry_after_s=outcome.retry_after_s,
            )
            result = Result.of(attempt["id"], claim_id, outcome, decision, ord=ord)
            if outcome_log.isEnabledFor(logging.DEBUG):
                outcome_log.debug(
                    "attempt %s to %s: %s, %s, %d ms",
                    attempt["id"],
                    attempt["url"],
                    decision.status,
                    outcome.status_code or outcome.error,
                    outcome.elapsed_ms,
                )
            self._recorder.add(result)
            if self._on_delivered is not None and result.status == SUCCEEDED:
                self._on_delivered(attempt["waited_ms"] + outcome.elapsed_ms)

    def _delivered(self, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(task, None)
        if self._last_claim.empty:  # a share freed up
            self._last_claim = replace(self._last_claim, empty=False)
        if not task.cancelled() and task.exception() is not None:
            # A bug, not a receiver's doing: the attempt stays in flight until its lease
            # expires and it is delivered again.
            log.error("delivery task failed", exc_info=task.exception())
        self._wake_if_claim_allowed()

    def _recorded(self, counts: dict[str, int]) -> None:
        self.summary.succeeded += counts.get("succeeded", 0)
        self.summary.failed += counts.get("failed", 0)
        self.summary.gave_up += counts.get("gave_up", 0)
        # A record can make more ready without a NOTIFY reaching a polling loop: the next head
        # of a key, an open circuit's backlog once its probe succeeds, a retry due now.
        self._more_due = True
        self._recorded_since_recovery = True
        self._wake_if_claim_allowed()

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
        self._recorder.close()
        await flusher

    async def _release(self, held: list[Held]) -> None:
        attempt_ids = [attempt_id for h in held for attempt_id in h.attempt_ids]
        claim_ids = list({h.claim_id for h in held})
        try:
            self.summary.released += await claims.on_pool(claims.release, claim_ids, attempt_ids)
        except _DB_ERRORS as exc:
            log.warning(
                "releasing %d attempts failed (their leases will expire): %s", len(held), exc
            )

    # Waking up

    async def _listen_forever(self) -> None:
        """Wake the loop on every NOTIFY; reconnect when the connection drops (polling covers
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
        self._more_due = True
        self._maybe_fresh = True
        self._wake.set()


def _requests(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """A claim's rows to send, as requests: each batch's members together, the rest alone."""
    batches: dict[uuid.UUID, list[dict[str, Any]]] = {}
    requests: list[list[dict[str, Any]]] = []
    for row in rows:
        if row["status"] != "in_flight":
            continue
        if row["batch_id"] is None:
            requests.append([row])
        elif row["batch_id"] in batches:
            batches[row["batch_id"]].append(row)
        else:
            batches[row["batch_id"]] = [row]
            requests.append(batches[row["batch_id"]])
    return requests
