"""The delivery rules of a subscription's health, one table row per transition: the circuit
breaker, the adaptive pace and Retry-After holds, as hookpost_health_next and
hookpost_circuit_shown (pure SQL functions) decide them from literal rows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from uuid import UUID

import psycopg
import pytest
from psycopg.rows import dict_row

from hookpost.config import CircuitSettings
from hookpost.delivery.schedule import SUCCEEDED, RetryPolicy, decide

# The defaults (README): 10 failures in a row, or half of 50 sends in a 60 s window; a 5 s
# cool-down doubling up to 1 h.
CIRCUIT = {
    "failures": 10,
    "failure_ratio": 0.5,
    "window_s": 60.0,
    "min_requests": 50,
    "cooldown_s": 5.0,
    "max_cooldown_s": 3600.0,
}
POLICY = RetryPolicy()
SUBSCRIPTION = UUID("0195f1c4-0000-7000-8000-000000000001")
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def health(**columns: Any) -> dict[str, Any]:
    """A subscription_health row: a closed circuit, no window, unpaced, unless `columns` say."""
    return {
        "subscription_id": SUBSCRIPTION,
        "circuit": "closed",
        "failure_streak": 0,
        "opened_at": None,
        "probe_at": None,
        "cooldown_s": 0.0,
        "window_started_at": None,
        "window_sent": 0,
        "window_failed": 0,
        "pace_per_s": None,
        "paused_until": None,
        **columns,
    }


def opened(**columns: Any) -> dict[str, Any]:
    """A circuit opened 5 s ago by 10 failures in a row, its probe due now."""
    return health(
        **{
            "circuit": "open",
            "failure_streak": 10,
            "opened_at": at(-5),
            "cooldown_s": 5.0,
            "probe_at": T0,
            "window_started_at": at(-5),
            "window_sent": 10,
            "window_failed": 10,
            **columns,
        }
    )


@dataclass(frozen=True)
class Batch:
    """One subscription's answers in a recorded batch, summed as hookpost_record sums them."""

    sent: int
    failed: int
    succeeded: int
    failed_after_success: int
    throttled: bool
    pause_s: float | None
    probe_failed: bool | None
    rate_limit_per_s: float | None


def answers(
    *statuses: int | None,
    retry_after_s: float | None = None,
    probe: bool = False,
    rate_limit_per_s: float | None = None,
) -> Batch:
    """A batch of these answers in completion order (None: a timeout), each ruled as the deliver
    loop rules it; `probe`: the last one answers the open circuit's probe. `rate_limit_per_s` is
    the subscription's."""
    decisions = [
        decide(1, status, POLICY, retry_after_s=retry_after_s, rand=lambda: 0.5)
        for status in statuses
    ]
    failures = [decision.counts_against_circuit for decision in decisions]
    successes = [i for i, decision in enumerate(decisions) if decision.status == SUCCEEDED]
    pauses = [decision.pause_s for decision in decisions if decision.pause_s is not None]
    return Batch(
        sent=len(statuses),
        failed=sum(failures),
        succeeded=len(successes),
        failed_after_success=sum(failures[successes[-1] + 1 :] if successes else failures),
        throttled=429 in statuses,
        pause_s=max(pauses, default=None),
        probe_failed=failures[-1] if probe else None,
        rate_limit_per_s=rate_limit_per_s,
    )


def probe(status: int | None) -> Batch:
    return answers(status, probe=True)


class Row(NamedTuple):
    name: str
    before: dict[str, Any]
    batch: Batch
    now: datetime
    after: dict[str, Any]


WINDOW = {"window_started_at": at(-10)}

ROWS = [
    # The failure streak and the tumbling window.
    Row(
        "a failure adds to the streak and to the window",
        health(failure_streak=3, window_started_at=at(-10), window_sent=5, window_failed=3),
        answers(500),
        T0,
        health(failure_streak=4, window_started_at=at(-10), window_sent=6, window_failed=4),
    ),
    Row(
        "a timeout is a failure; the first answer starts a window",
        health(),
        answers(None),
        T0,
        health(failure_streak=1, window_started_at=T0, window_sent=1, window_failed=1),
    ),
    Row(
        "a success restarts the streak from the failures after it",
        health(failure_streak=5, window_started_at=at(-10), window_sent=5, window_failed=5),
        answers(500, 200, 500),
        T0,
        health(failure_streak=1, window_started_at=at(-10), window_sent=8, window_failed=7),
    ),
    Row(
        "the window starts again once window_s have passed",
        health(failure_streak=2, window_started_at=at(-60), window_sent=45, window_failed=30),
        answers(500),
        T0,
        health(failure_streak=3, window_started_at=T0, window_sent=1, window_failed=1),
    ),
    Row(
        "just inside window_s the window goes on",
        health(failure_streak=2, window_started_at=at(-59.999), window_sent=45, window_failed=30),
        answers(500),
        T0,
        health(failure_streak=3, window_started_at=at(-59.999), window_sent=46, window_failed=31),
    ),
    # closed -> open on the streak.
    Row(
        "closed -> open on exactly `failures` failures in a row",
        health(failure_streak=9, **WINDOW, window_sent=9, window_failed=9),
        answers(500),
        T0,
        opened(
            failure_streak=10,
            opened_at=T0,
            probe_at=at(5),
            **WINDOW,
            window_sent=10,
            window_failed=10,
        ),
    ),
    Row(
        "one failure short of the streak stays closed",
        health(failure_streak=8, **WINDOW, window_sent=8, window_failed=8),
        answers(500),
        T0,
        health(failure_streak=9, **WINDOW, window_sent=9, window_failed=9),
    ),
    Row(
        "failures after a success in the same batch open it",
        health(failure_streak=3, **WINDOW, window_sent=3, window_failed=3),
        answers(200, *[500] * 10),
        T0,
        opened(
            failure_streak=10,
            opened_at=T0,
            probe_at=at(5),
            **WINDOW,
            window_sent=14,
            window_failed=13,
        ),
    ),
    Row(
        "a success after the failures in the same batch keeps it closed",
        health(failure_streak=9, **WINDOW, window_sent=9, window_failed=9),
        answers(500, 200),
        T0,
        health(failure_streak=0, **WINDOW, window_sent=11, window_failed=10),
    ),
    # closed -> open on the ratio.
    Row(
        "closed -> open on exactly failure_ratio of exactly min_requests sends",
        health(failure_streak=1, window_started_at=at(-30), window_sent=49, window_failed=24),
        answers(500),
        T0,
        opened(
            failure_streak=2,
            opened_at=T0,
            probe_at=at(5),
            window_started_at=at(-30),
            window_sent=50,
            window_failed=25,
        ),
    ),
    Row(
        "just under failure_ratio stays closed",
        health(failure_streak=1, window_started_at=at(-30), window_sent=49, window_failed=23),
        answers(500),
        T0,
        health(failure_streak=2, window_started_at=at(-30), window_sent=50, window_failed=24),
    ),
    Row(
        "failure_ratio over fewer than min_requests sends stays closed",
        health(failure_streak=1, window_started_at=at(-30), window_sent=48, window_failed=40),
        answers(500),
        T0,
        health(failure_streak=2, window_started_at=at(-30), window_sent=49, window_failed=41),
    ),
    # 410 and 429 are not failures.
    Row(
        "a 410 is not a failure",
        health(failure_streak=9, **WINDOW, window_sent=9, window_failed=9),
        answers(410),
        T0,
        health(failure_streak=9, **WINDOW, window_sent=10, window_failed=9),
    ),
    Row(
        "a 429 is not a failure: it halves the pace instead",
        health(failure_streak=9, **WINDOW, window_sent=9, window_failed=9, pace_per_s=8.0),
        answers(429),
        T0,
        health(failure_streak=9, **WINDOW, window_sent=10, window_failed=9, pace_per_s=4.0),
    ),
    # An open circuit: only its probe's answer changes it.
    Row(
        "late failures of what was in flight leave an open circuit as it is",
        opened(),
        answers(500, 500),
        T0,
        opened(failure_streak=12, window_sent=12, window_failed=12),
    ),
    Row(
        "a late success does not close it",
        opened(),
        answers(200),
        T0,
        opened(failure_streak=0, window_sent=11),
    ),
    Row(
        "open -> closed on the probe's success",
        opened(),
        probe(200),
        T0,
        health(failure_streak=0, window_started_at=at(-5), window_sent=11, window_failed=10),
    ),
    Row(
        "a probe answered 429 is no failure: it closes, and the pace halves",
        opened(pace_per_s=8.0),
        probe(429),
        T0,
        health(window_started_at=at(-5), window_sent=11, window_failed=10, pace_per_s=4.0),
    ),
    Row(
        "the probe's failure opens it again for twice the cool-down",
        opened(),
        probe(500),
        T0,
        opened(
            failure_streak=11, cooldown_s=10.0, probe_at=at(10), window_sent=11, window_failed=11
        ),
    ),
    Row(
        "the doubling reaches max_cooldown_s",
        opened(cooldown_s=2000.0),
        probe(None),
        T0,
        opened(
            failure_streak=11,
            cooldown_s=3600.0,
            probe_at=at(3600),
            window_sent=11,
            window_failed=11,
        ),
    ),
    Row(
        "at max_cooldown_s it stays there",
        opened(cooldown_s=3600.0),
        probe(500),
        T0,
        opened(
            failure_streak=11,
            cooldown_s=3600.0,
            probe_at=at(3600),
            window_sent=11,
            window_failed=11,
        ),
    ),
    Row(
        "a cool-down under cooldown_s (the setting raised since) doubles from cooldown_s",
        opened(cooldown_s=1.0),
        probe(500),
        T0,
        opened(
            failure_streak=11, cooldown_s=10.0, probe_at=at(10), window_sent=11, window_failed=11
        ),
    ),
    # The adaptive pace.
    Row(
        "a 429 halves the pace",
        health(**WINDOW, window_sent=20, pace_per_s=8.0),
        answers(429),
        T0,
        health(**WINDOW, window_sent=21, pace_per_s=4.0),
    ),
    Row(
        "a first 429 halves the configured rate",
        health(**WINDOW, window_sent=20),
        answers(429, rate_limit_per_s=10.0),
        T0,
        health(**WINDOW, window_sent=21, pace_per_s=5.0),
    ),
    Row(
        "a first 429 without a rate halves the window's send rate",
        health(**WINDOW, window_sent=99),
        answers(429),
        T0,
        health(**WINDOW, window_sent=100, pace_per_s=5.0),
    ),
    Row(
        "a window younger than a second counts as one second",
        health(),
        answers(429, 429, 429, 429),
        T0,
        health(window_started_at=T0, window_sent=4, pace_per_s=2.0),
    ),
    Row(
        "the pace never goes below 0.5/s",
        health(**WINDOW, window_sent=20, pace_per_s=0.8),
        answers(429),
        T0,
        health(**WINDOW, window_sent=21, pace_per_s=0.5),
    ),
    Row(
        "a 429 among successes halves the pace",
        health(**WINDOW, window_sent=20, pace_per_s=8.0),
        answers(200, 200, 429),
        T0,
        health(**WINDOW, window_sent=23, pace_per_s=4.0),
    ),
    Row(
        "each success raises the pace by 5 %",
        health(**WINDOW, window_sent=20, pace_per_s=4.0),
        answers(200, 200),
        T0,
        health(**WINDOW, window_sent=22, pace_per_s=4.41),
    ),
    Row(
        "failures leave the pace as it is",
        health(**WINDOW, window_sent=20, pace_per_s=4.0),
        answers(500),
        T0,
        health(failure_streak=1, **WINDOW, window_sent=21, window_failed=1, pace_per_s=4.0),
    ),
    Row(
        "the pace reaching the configured rate is no pace",
        health(**WINDOW, window_sent=20, pace_per_s=9.6),
        answers(200, rate_limit_per_s=10.0),
        T0,
        health(**WINDOW, window_sent=21),
    ),
    Row(
        "just under the configured rate it stays paced",
        health(**WINDOW, window_sent=20, pace_per_s=9.5),
        answers(200, rate_limit_per_s=10.0),
        T0,
        health(**WINDOW, window_sent=21, pace_per_s=9.975),
    ),
    Row(
        "without a rate, 1,000/s is unpaced",
        health(**WINDOW, window_sent=20, pace_per_s=960.0),
        answers(200),
        T0,
        health(**WINDOW, window_sent=21),
    ),
    Row(
        "just under 1,000/s it stays paced",
        health(**WINDOW, window_sent=20, pace_per_s=950.0),
        answers(200),
        T0,
        health(**WINDOW, window_sent=21, pace_per_s=997.5),
    ),
    # Retry-After holds.
    Row(
        "a Retry-After holds every send until then",
        health(**WINDOW, window_sent=20),
        answers(503, retry_after_s=30),
        T0,
        health(failure_streak=1, **WINDOW, window_sent=21, window_failed=1, paused_until=at(30)),
    ),
    Row(
        "a later hold in place stays",
        health(**WINDOW, window_sent=20, paused_until=at(60)),
        answers(503, retry_after_s=30),
        T0,
        health(failure_streak=1, **WINDOW, window_sent=21, window_failed=1, paused_until=at(60)),
    ),
    Row(
        "a Retry-After of 0 holds nothing",
        health(**WINDOW, window_sent=20),
        answers(429, retry_after_s=0, rate_limit_per_s=10.0),
        T0,
        health(**WINDOW, window_sent=21, pace_per_s=5.0),
    ),
    Row(
        "without a Retry-After a hold stays as it was",
        health(**WINDOW, window_sent=20, paused_until=at(-5)),
        answers(200),
        T0,
        health(**WINDOW, window_sent=21, paused_until=at(-5)),
    ),
]


@pytest.fixture(scope="module")
def db(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        yield conn


def as_json(row: dict[str, Any] | None) -> str | None:
    return None if row is None else json.dumps(row, default=str)


def test_the_table_runs_on_the_default_settings(monkeypatch):
    for name in (
        "HOOKPOST_CIRCUIT_FAILURES",
        "HOOKPOST_CIRCUIT_FAILURE_RATIO",
        "HOOKPOST_CIRCUIT_WINDOW_S",
        "HOOKPOST_CIRCUIT_MIN_REQUESTS",
        "HOOKPOST_CIRCUIT_COOLDOWN_S",
        "HOOKPOST_CIRCUIT_MAX_COOLDOWN_S",
    ):
        monkeypatch.delenv(name, raising=False)
    assert asdict(CircuitSettings.from_env()) == CIRCUIT


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.name)
def test_health_after_a_batch(db, row: Row):
    after = db.execute(
        """
        SELECT * FROM hookpost_health_next(
            jsonb_populate_record(NULL::subscription_health, %(before)s::jsonb),
            %(sent)s, %(failed)s, %(succeeded)s, %(failed_after_success)s, %(throttled)s,
            %(pause_s)s, %(probe_failed)s, %(rate_limit_per_s)s, %(now)s, %(circuit)s::jsonb)
        """,
        {
            **asdict(row.batch),
            "before": as_json(row.before),
            "now": row.now,
            "circuit": json.dumps(CIRCUIT),
        },
    ).fetchone()
    pace = row.after["pace_per_s"]
    assert after == {**row.after, "pace_per_s": pace if pace is None else pytest.approx(pace)}


class Shown(NamedTuple):
    name: str
    health: dict[str, Any] | None
    probe_in_flight: bool
    now: datetime
    circuit: str


SHOWN = [
    Shown("closed", health(), False, T0, "closed"),
    Shown("no health row yet: closed", None, False, T0, "closed"),
    Shown("open before its probe time", opened(probe_at=at(5)), False, T0, "open"),
    Shown("open at probe time, the probe not sent yet", opened(probe_at=T0), False, T0, "open"),
    Shown(
        "open -> half_open at probe time, the probe out", opened(probe_at=T0), True, T0, "half_open"
    ),
    Shown("half_open while the probe is out", opened(probe_at=at(-3)), True, T0, "half_open"),
    Shown("open just before probe time", opened(probe_at=at(0.000001)), True, T0, "open"),
]


@pytest.mark.parametrize("row", SHOWN, ids=lambda row: row.name)
def test_circuit_shown(db, row: Shown):
    shown = db.execute(
        """
        SELECT hookpost_circuit_shown(
            jsonb_populate_record(NULL::subscription_health, %(health)s::jsonb),
            %(probe_in_flight)s, %(now)s) AS circuit
        """,
        {"health": as_json(row.health), "probe_in_flight": row.probe_in_flight, "now": row.now},
    ).fetchone()
    assert shown["circuit"] == row.circuit
