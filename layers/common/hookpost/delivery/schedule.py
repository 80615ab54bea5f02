"""What a try's outcome means and when the next try is due: pure functions, no I/O.

Try 1 is the first send. A failed try k is followed by retry k: fast retries first (`fast_s`
doubling up to `fast_max_s`, `fast_count` of them), then `slow_count` slow ones every `slow_s`;
a failure after that gives up. Every delay is spread by +/- `jitter` so that the retries of
many attempts failing together (a receiver outage) do not come back in lockstep.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from hookpost.config import DeliverySettings

SUCCEEDED = "succeeded"
FAILED = "failed"
GAVE_UP = "gave_up"

# Statuses whose Retry-After says when the receiver wants to be tried again (RFC 9110, 6585).
_RETRY_AFTER_STATUSES = frozenset({429, 503})
# 2**60 seconds is past any fast_max_s; capping the exponent keeps a huge count from overflowing.
_MAX_DOUBLINGS = 60


@dataclass(frozen=True)
class RetryPolicy:
    fast_s: float = 5.0
    fast_max_s: float = 300.0
    fast_count: int = 8
    slow_s: float = 3600.0
    slow_count: int = 24
    jitter: float = 0.2

    @classmethod
    def from_settings(cls, settings: DeliverySettings) -> RetryPolicy:
        return cls(
            fast_s=settings.retry_fast_s,
            fast_max_s=settings.retry_fast_max_s,
            fast_count=settings.retry_fast_count,
            slow_s=settings.retry_slow_s,
            slow_count=settings.retry_slow_count,
            jitter=settings.retry_jitter,
        )


@dataclass(frozen=True)
class Decision:
    """The status a finished try is recorded with, and what follows it: the next try, whether
    the subscription is disabled, whether the try counts towards opening its circuit, and how
    long the receiver asked for nothing more to be sent (Retry-After of a 429 or 503)."""

    status: str
    retry_in_s: float | None = None
    disable_subscription: bool = False
    counts_against_circuit: bool = False
    pause_s: float | None = None


def base_delay(try_number: int, policy: RetryPolicy) -> float | None:
    """The delay, before jitter, from failed try `try_number` to the next; None: give up."""
    if try_number < 1:
        raise ValueError("tries are numbered from 1")
    if try_number <= policy.fast_count:
        doublings = min(try_number - 1, _MAX_DOUBLINGS)
        return min(policy.fast_s * 2.0**doublings, policy.fast_max_s)
    if try_number <= policy.fast_count + policy.slow_count:
        return policy.slow_s
    return None


def decide(
    try_number: int,
    status_code: int | None,
    policy: RetryPolicy,
    *,
    retry_after_s: float | None = None,
    rand: Callable[[], float] = random.random,
) -> Decision:
    """The outcome of try `try_number` that got `status_code` (None: timeout, connection error,
    refused target). 2xx succeeds; 410 gives up and disables the subscription; anything else
    fails with a retry after the backoff, or gives up once the budget is spent. A 429 or 503's
    Retry-After is waited at least, up to the slow delay, by this attempt and by every send to
    the subscription. A 429 is the receiver pacing us, not failing: it does not count towards
    the circuit (the pace adapts instead), nor does a 410. `rand` returns floats in [0, 1)."""
    if status_code is not None and 200 <= status_code < 300:
        return Decision(SUCCEEDED)
    if status_code == 410:
        return Decision(GAVE_UP, disable_subscription=True)
    counts = status_code != 429
    pause_s = None
    if retry_after_s is not None and status_code in _RETRY_AFTER_STATUSES:
        pause_s = min(retry_after_s, policy.slow_s)
    delay = base_delay(try_number, policy)
    if delay is None:
        return Decision(GAVE_UP, counts_against_circuit=counts, pause_s=pause_s)
    delay *= 1.0 + policy.jitter * (2.0 * rand() - 1.0)
    if pause_s is not None:
        delay = max(delay, pause_s)
    return Decision(
        FAILED, retry_in_s=max(delay, 0.0), counts_against_circuit=counts, pause_s=pause_s
    )


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After value (delay-seconds or an HTTP date); None when
    absent or unreadable. `now` must be timezone-aware."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # a "-0000" zone: RFC 5322 means UTC
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)
