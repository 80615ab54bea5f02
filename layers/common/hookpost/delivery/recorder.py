"""Recording outcomes: what one finished try writes (`Result`), and the group commit that
writes them (`Recorder`).

One flusher records for the whole loop: whatever finished while the previous statement ran goes
in the next one, up to a batch a statement. So a thousand answers a second cost a few statements,
not a thousand, and a slow database slows recording, never the requests (the loop stops claiming
while recording lags: see plan.may_claim). Answers come in bursts (a claim's requests go out
together and come back together, over a few turns of the event loop): woken by the first, the
flusher lets the event loop turn while more keep coming, so that a burst is one statement, not
two or three. A batch that fails is kept and tried again; its attempts stay in flight under
their lease meanwhile, and are delivered again should it expire.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import psycopg

from hookpost.config import DeliverySettings
from hookpost.db.pool import DatabaseUnavailable
from hookpost.delivery import claims
from hookpost.delivery.schedule import Decision
from hookpost.delivery.sender import Outcome

log = logging.getLogger("hookpost.delivery")

# How long a closing recorder keeps trying; on Lambda, kept free at the end of an invocation
# for the last records and the return.
CLOSE_MARGIN_S = 2.0
# How many times a batch of outcomes whose statement fails (not the connection) is tried.
_RECORD_TRIES = 3
# How long the flusher gathers a burst of answers at most before it records them, and how many
# turns of the event loop in a row without a new one end the burst.
GATHER_S = 0.005
_QUIET_TURNS = 2


@dataclass(frozen=True)
class Result:
    """One finished try, as hookpost_record takes it: the attempt and the claim holding it (only
    that claim may record it), the status decided, the response (or error), and what follows:
    `retry_in_s` until the next try, `disable` the subscription (a 410), whether the try is a
    `failure` towards the circuit, whether it was `throttled` (a 429, which halves the pace),
    and `pause_s` the receiver asked for (Retry-After). `ord` is the completion order: a
    subscription's failure streak counts from its last success in this order."""

    id: uuid.UUID
    claim_id: uuid.UUID
    status: str
    response_status: int | None
    response_headers: dict[str, str] | None
    response_body: str | None
    elapsed_ms: int
    error: str | None
    retry_in_s: float | None
    disable: bool
    ord: int
    failure: bool
    throttled: bool
    pause_s: float | None

    @classmethod
    def of(
        cls,
        attempt_id: uuid.UUID,
        claim_id: uuid.UUID,
        outcome: Outcome,
        decision: Decision,
        *,
        ord: int,
    ) -> Result:
        return cls(
            id=attempt_id,
            claim_id=claim_id,
            status=decision.status,
            response_status=outcome.status_code,
            response_headers=outcome.headers,
            response_body=outcome.body,
            elapsed_ms=outcome.elapsed_ms,
            error=outcome.error,
            retry_in_s=decision.retry_in_s,
            disable=decision.disable_subscription,
            ord=ord,
            failure=decision.counts_against_circuit,
            throttled=outcome.status_code == 429,
            pause_s=decision.pause_s,
        )

    def row(self) -> dict[str, Any]:
        """The row of hookpost_record's p_results recordset (what claims.record takes)."""
        # Not asdict(): that deep-copies every value, once per outcome.
        return {name: getattr(self, name) for name in _ROW_KEYS}


_ROW_KEYS = tuple(field.name for field in fields(Result))


class Recorder:
    """The flusher: `add()` results from anywhere in the event loop, `run()` it as a task, and
    `close()` it to have it record what is left and return. `on_recorded` gets how many were
    recorded per status, after each batch."""

    def __init__(
        self,
        settings: DeliverySettings,
        *,
        batch: int,
        on_recorded: Callable[[dict[str, int]], None],
    ) -> None:
        self._batch = batch
        self._circuit = settings.circuit
        self._retry_s = min(settings.poll_s, 1.0)
        self._on_recorded = on_recorded
        self._results: list[Result] = []
        self._requests_pending = 0
        self._to_flush = asyncio.Event()
        self._closing = False
        # Failures in a row of the statement itself, for the batch at the head.
        self._failures = 0

    @property
    def pending(self) -> int:
        """Requests whose results are not all recorded yet (a batch's members are one)."""
        return self._requests_pending

    def add(self, result: Result) -> None:
        """A result; those of one request (a batch's members, one `ord`) are added in a row."""
        if not self._results or self._results[-1].ord != result.ord:
            self._requests_pending += 1
        self._results.append(result)
        self._to_flush.set()

    def close(self) -> None:
        """Record what is left, then return from run(); give up after CLOSE_MARGIN_S of failures."""
        self._closing = True
        self._to_flush.set()

    async def run(self) -> None:
        give_up_at: float | None = None
        while True:
            await self._to_flush.wait()
            self._to_flush.clear()
            await self._gather()
            if await self._flush():
                if self._closing:
                    return
                continue
            if self._closing:
                give_up_at = give_up_at or time.monotonic() + CLOSE_MARGIN_S
                if time.monotonic() >= give_up_at:
                    log.error(
                        "%d outcomes not recorded; their attempts are delivered again once "
                        "their lease expires",
                        len(self._results),
                    )
                    return
            await asyncio.sleep(self._retry_s)
            self._to_flush.set()

    async def _gather(self) -> None:
        """Let the event loop turn while results keep coming (the rest of a burst), until two
        turns in a row add none, a batch is there, GATHER_S has passed or the recorder is
        closing. A lone answer waits two turns of the event loop."""
        deadline = time.monotonic() + GATHER_S
        count = len(self._results)
        quiet = 0
        while not self._closing and count < self._batch and time.monotonic() < deadline:
            await asyncio.sleep(0)
            quiet = quiet + 1 if len(self._results) == count else 0
            if quiet == _QUIET_TURNS:
                return
            count = len(self._results)

    async def _flush(self) -> bool:
        """Record every result collected, a batch per statement; False when the database
        failed (they are kept and tried again)."""
        while self._results:
            batch = self._results[: self._batch]
            try:
                counts = await claims.on_pool(
                    claims.record, [result.row() for result in batch], self._circuit
                )
            except DatabaseUnavailable as exc:  # unreachable, or a deadlock: try again
                log.warning("recording %d outcomes failed: %s", len(batch), exc)
                return False
            except psycopg.Error:
                # The statement itself failed (a subscription deleted meanwhile, say): a retry
                # usually passes, but a batch that keeps failing is dropped rather than block
                # every later one. Its attempts are delivered again once their lease expires.
                self._failures += 1
                if self._failures < _RECORD_TRIES:
                    log.warning("recording %d outcomes failed", len(batch), exc_info=True)
                    return False
                log.exception("recording %d outcomes failed again: dropped", len(batch))
                counts = {}
            self._failures = 0
            del self._results[: len(batch)]
            self._requests_pending -= len({result.ord for result in batch})
            if self._results and self._results[0].ord == batch[-1].ord:
                self._requests_pending += 1  # the rest of that request is still to record
            self._on_recorded(counts)
        return True
