"""What the deliver loop does next: a pure function of what it can observe at one instant.

The loop (delivery/loop.py) asks `next_step` over and over and does what it says: `Stop`,
`Recover` expired leases, `Claim` up to `want` attempts, or `Wait` up to `timeout_s` for a wake-up
(a NOTIFY, an answer freeing a slot, a recorded batch, a stop). Everything that sets the loop's
pace lives here, in one place, testable without a database or a clock; the loop only gathers
the `Observed` snapshot and acts.

Two aims pull against each other. A fresh event must go out within milliseconds even while a
backlog fills every slot: so a NOTIFY (or the poll) may claim at once, and fairness in the claim
gives the fresh event a slot. A backlog must be worked off in batches, not one claim per answer:
so under a backlog the loop waits until `refill_at` slots are free.
"""

from __future__ import annotations

from dataclasses import dataclass

from hookpost.config import DeliverySettings
from hookpost.delivery.claims import NextReady, NothingReady, ReadyIn, ReadyNow

# The shortest wait for a subscription's turn between claims.
MIN_WAIT_S = 0.01
# How soon a loop looks again at a subscription that was ready but yielded nothing.
BUSY_WAIT_S = 0.02


@dataclass(frozen=True)
class Limits:
    """What holds for a whole run: `concurrency` requests on the wire at most; `batch` attempts
    a claim at most (never more than `concurrency`); under a backlog, a claim only once
    `refill_at` slots are free (at most `batch`), so that claims stay batches; `poll_s` between
    looks unless woken; nothing claimed from `claim_until` (a time.monotonic()) on; with
    `until_idle`, a stop once nothing is due, in flight or waiting to be recorded."""

    concurrency: int
    batch: int
    refill_at: int
    poll_s: float
    claim_until: float | None = None
    until_idle: bool = False

    @classmethod
    def from_settings(
        cls, settings: DeliverySettings, *, claim_until: float | None, until_idle: bool
    ) -> Limits:
        batch = max(1, min(settings.batch_size, settings.concurrency))
        return cls(
            concurrency=settings.concurrency,
            batch=batch,
            refill_at=max(1, batch // 2),
            poll_s=settings.poll_s,
            claim_until=claim_until,
            until_idle=until_idle,
        )


@dataclass(frozen=True)
class LastClaim:
    """What the last claim said. `empty`: it found nothing, and no answer has freed a share
    since (an answer makes the loop's share of a subscription, or its limits, room again).
    `drained`: nothing is left to claim at the moment; fewer than asked with a subscription still
    ready means a cap (this loop's share of it, its limits), not the end of the queue.
    `next_ready`: when another subscription's turn comes."""

    empty: bool
    drained: bool
    next_ready: NextReady

    @classmethod
    def of(cls, want: int, got: int, next_ready: NextReady) -> LastClaim:
        drained = got < want and not isinstance(next_ready, ReadyNow)
        return cls(empty=got == 0, drained=drained, next_ready=next_ready)


# Before the first claim: nothing known to be held back, nothing known to be waiting.
NO_CLAIM_YET = LastClaim(empty=False, drained=True, next_ready=NothingReady())


@dataclass(frozen=True)
class Observed:
    """The loop at one instant: the time (time.monotonic()); requests on the wire; requests
    whose outcomes are not yet all recorded (a batch is one); `maybe_fresh`, a NOTIFY or the
    poll since the last claim, so a fresh event may be waiting; `more_due`, a claim may find
    something (set with maybe_fresh, by a recovery that returned attempts, and by a claim that
    was capped rather than drained); the last claim; when lease recovery is due; whether stop()
    was called; whether outcomes were recorded since the last recovery."""

    now: float
    in_flight: int
    results_pending: int
    maybe_fresh: bool
    more_due: bool
    last_claim: LastClaim
    recover_at: float
    stop_requested: bool = False
    recorded_since_recovery: bool = False


@dataclass(frozen=True)
class Stop:
    """Claim nothing more: finish or release what is held, and return."""


@dataclass(frozen=True)
class Recover:
    """Return expired leases to pending, end expired attempts, pull forward ready subscriptions."""


@dataclass(frozen=True)
class Claim:
    """Claim up to `want` attempts."""

    want: int


@dataclass(frozen=True)
class Wait:
    """Wait for a wake-up, at most `timeout_s`; a timeout counts as a poll."""

    timeout_s: float


Step = Stop | Recover | Claim | Wait


def next_step(limits: Limits, seen: Observed) -> Step:
    """Stop if asked, past claim_until, or (until_idle) idle; else recover if due; else claim
    if allowed; else wait."""
    idle = (
        seen.last_claim.drained
        and not seen.more_due
        and not seen.in_flight
        and not seen.results_pending
    )
    past_deadline = limits.claim_until is not None and seen.now >= limits.claim_until
    if seen.stop_requested or past_deadline:
        return Stop()
    if limits.until_idle and idle:
        # A record can leave a subscription ready that no claim saw (its state row was held by
        # a claim at that moment, so the record skipped it): the recovery's resync finds it.
        return Recover() if seen.recorded_since_recovery else Stop()
    if seen.now >= seen.recover_at:
        return Recover()
    if may_claim(limits, seen):
        return Claim(want=min(limits.concurrency - seen.in_flight, limits.batch))
    return Wait(timeout_s=_wait_s(limits, seen))


def may_claim(limits: Limits, seen: Observed) -> bool:
    """Whether a claim now is worth it (stopping and recovery aside): what wakes a waiting loop
    when a slot frees up or a batch is recorded."""
    free = limits.concurrency - seen.in_flight
    # Recording lags (the database is slow or down): take on no more until it catches up.
    if free <= 0 or seen.results_pending >= 2 * limits.batch:
        return False
    # Someone's fresh event may be waiting (a NOTIFY, or the poll): take it at once, even
    # under a backlog; fairness in the claim gives it a slot.
    if seen.maybe_fresh:
        return True
    # Nothing was claimable although a subscription is ready (this loop holds its share,
    # or another claim holds it): an answer or the poll changes that, a free slot does not.
    if not seen.more_due or seen.last_claim.empty:
        return False
    # With the queue drained, take whatever arrives at once: a new event goes out within
    # milliseconds. Under a backlog, wait for a worthwhile batch.
    return free >= limits.refill_at or seen.last_claim.drained


def _wait_s(limits: Limits, seen: Observed) -> float:
    timeout = min(limits.poll_s, seen.recover_at - seen.now)
    ready = seen.last_claim.next_ready
    if isinstance(ready, ReadyIn):
        # Held subscriptions (a rate, a Retry-After, a circuit's probe) come due without
        # a NOTIFY.
        timeout = min(timeout, max(ready.seconds, MIN_WAIT_S))
    elif isinstance(ready, ReadyNow) and seen.last_claim.empty:
        # Ready, yet nothing came: this loop holds that subscription's share, or another
        # transaction held its row for a moment (a record making it ready, another claim).
        # Look again shortly rather than at the next poll.
        timeout = min(timeout, BUSY_WAIT_S)
    if limits.claim_until is not None:
        timeout = min(timeout, limits.claim_until - seen.now)
    return max(timeout, 0.0)
