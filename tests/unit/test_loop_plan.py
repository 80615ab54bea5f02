"""When the deliver loop claims, waits or stops (plan.next_step), and what it records: pure."""

from __future__ import annotations

import dataclasses
import math
import re
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

import hookpost
from hookpost.config import DeliverySettings
from hookpost.delivery.claims import NothingReady, ReadyIn, ReadyNow, next_ready
from hookpost.delivery.plan import (
    BUSY_WAIT_S,
    MIN_WAIT_S,
    NO_CLAIM_YET,
    Claim,
    LastClaim,
    Limits,
    Observed,
    Recover,
    Step,
    Stop,
    Wait,
    next_step,
)
from hookpost.delivery.recorder import Result
from hookpost.delivery.schedule import FAILED, Decision
from hookpost.delivery.sender import Outcome

NOW = 1000.0
LIMITS = Limits(concurrency=100, batch=100, refill_at=50, poll_s=1.0)
UNTIL_IDLE = dataclasses.replace(LIMITS, until_idle=True)
# The last claim took all it asked for: a backlog is left.
BACKLOG = LastClaim(empty=False, drained=False, next_ready=ReadyNow())
# The last claim took fewer than asked, and no subscription is ready: the queue is drained.
DRAINED = LastClaim(empty=False, drained=True, next_ready=NothingReady())
# The last claim found nothing although a subscription is ready: its share is held.
SHARE_HELD = LastClaim(empty=True, drained=False, next_ready=ReadyNow())


def held_until(seconds: float) -> LastClaim:
    """The queue drained but for subscriptions held `seconds` more (rate, Retry-After, probe)."""
    return LastClaim(empty=True, drained=True, next_ready=ReadyIn(seconds))


def seen(**changes: object) -> Observed:
    """A loop with nothing in flight, nothing due and a drained queue, changed by `changes`."""
    quiet = Observed(
        now=NOW,
        in_flight=0,
        results_pending=0,
        maybe_fresh=False,
        more_due=False,
        last_claim=DRAINED,
        recover_at=NOW + 30,
    )
    return dataclasses.replace(quiet, **changes)


FRESH = {"maybe_fresh": True, "more_due": True}

CASES: list[tuple[str, Limits, Observed, Step]] = [
    # Stopping comes first.
    ("stop requested", LIMITS, seen(stop_requested=True, **FRESH), Stop()),
    ("stop before a due recovery", LIMITS, seen(stop_requested=True, recover_at=NOW), Stop()),
    ("claim_until reached", dataclasses.replace(LIMITS, claim_until=NOW), seen(**FRESH), Stop()),
    ("until_idle: idle", UNTIL_IDLE, seen(), Stop()),
    ("until_idle: requests on the wire", UNTIL_IDLE, seen(in_flight=3), Wait(1.0)),
    # An answer not yet recorded can make more ready (the next head of a key, a probe's
    # backlog): not idle until it is recorded and looked at again.
    ("until_idle: outcomes not recorded", UNTIL_IDLE, seen(results_pending=1), Wait(1.0)),
    (
        "until_idle: idle after a record, recovery's resync looks once more",
        UNTIL_IDLE,
        seen(recorded_since_recovery=True),
        Recover(),
    ),
    ("until_idle: more may be due", UNTIL_IDLE, seen(more_due=True), Claim(100)),
    ("until_idle: capped, not drained", UNTIL_IDLE, seen(last_claim=SHARE_HELD), Wait(BUSY_WAIT_S)),
    ("idle, running on", LIMITS, seen(), Wait(1.0)),
    # Recovery before claiming.
    ("recovery due", LIMITS, seen(recover_at=NOW, **FRESH), Recover()),
    ("a loop starts by recovering", LIMITS, seen(recover_at=-math.inf), Recover()),
    # Claiming.
    ("first look", LIMITS, seen(last_claim=NO_CLAIM_YET, **FRESH), Claim(100)),
    (
        "fresh event under a backlog takes the few free slots",
        LIMITS,
        seen(in_flight=95, last_claim=BACKLOG, **FRESH),
        Claim(5),
    ),
    ("fresh event, no free slot", LIMITS, seen(in_flight=100, **FRESH), Wait(1.0)),
    ("recording lags: no more taken on", LIMITS, seen(results_pending=200, **FRESH), Wait(1.0)),
    ("recording just keeps up", LIMITS, seen(results_pending=199, **FRESH), Claim(100)),
    (
        "share held: a free slot changes nothing, look again shortly",
        LIMITS,
        seen(in_flight=90, more_due=True, last_claim=SHARE_HELD),
        Wait(BUSY_WAIT_S),
    ),
    (
        "share held, yet a fresh event is claimed",
        LIMITS,
        seen(in_flight=90, last_claim=SHARE_HELD, **FRESH),
        Claim(10),
    ),
    ("drained: nothing due, wait for the poll", LIMITS, seen(in_flight=10), Wait(1.0)),
    (
        "backlog below the refill threshold waits for slots, not the clock",
        LIMITS,
        seen(in_flight=51, more_due=True, last_claim=BACKLOG),
        Wait(1.0),
    ),
    (
        "backlog at the refill threshold claims a batch",
        LIMITS,
        seen(in_flight=50, more_due=True, last_claim=BACKLOG),
        Claim(50),
    ),
    (
        "drained queue: whatever arrives goes at once",
        LIMITS,
        seen(in_flight=99, more_due=True, last_claim=DRAINED),
        Claim(1),
    ),
    (
        "a claim takes a batch at most",
        dataclasses.replace(LIMITS, batch=20, refill_at=10),
        seen(**FRESH),
        Claim(20),
    ),
    # How long to wait.
    ("held subscription comes due", LIMITS, seen(last_claim=held_until(0.3)), Wait(0.3)),
    ("held subscription due at once", LIMITS, seen(last_claim=held_until(0.001)), Wait(MIN_WAIT_S)),
    ("held subscription due after the poll", LIMITS, seen(last_claim=held_until(5)), Wait(1.0)),
    ("recovery comes due first", LIMITS, seen(recover_at=NOW + 0.25), Wait(0.25)),
    (
        "claim_until comes first",
        dataclasses.replace(LIMITS, claim_until=NOW + 0.5),
        seen(last_claim=held_until(0.75)),
        Wait(0.5),
    ),
]


@pytest.mark.parametrize(
    ("limits", "observed", "step"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_next_step(limits: Limits, observed: Observed, step: Step):
    assert next_step(limits, observed) == step


@pytest.mark.parametrize(
    ("want", "got", "ready", "empty", "drained"),
    [
        (100, 100, ReadyNow(), False, False),  # took all it asked: a backlog
        (100, 40, ReadyNow(), False, False),  # capped (a share, a limit), not drained
        (100, 40, NothingReady(), False, True),
        (100, 40, ReadyIn(2.0), False, True),  # the rest is held: nothing to claim now
        (100, 0, ReadyNow(), True, False),  # a subscription's share is held
    ],
)
def test_what_a_claim_says(want, got, ready, empty, drained):
    assert LastClaim.of(want, got, ready) == LastClaim(empty, drained, ready)


@pytest.mark.parametrize(
    ("in_s", "hint"),
    [
        (None, NothingReady()),
        (Decimal("0"), ReadyNow()),
        (Decimal("-0.5"), ReadyNow()),  # overdue: its turn has come
        (Decimal("0.25"), ReadyIn(0.25)),
    ],
)
def test_next_ready_hint(in_s, hint):
    assert next_ready(in_s) == hint


def test_limits_keep_claims_batches_within_concurrency():
    settings = dataclasses.replace(DeliverySettings.from_env(False), concurrency=10, batch_size=100)
    limits = Limits.from_settings(settings, claim_until=None, until_idle=False)
    assert (limits.batch, limits.refill_at) == (10, 5)
    one = dataclasses.replace(settings, concurrency=1)
    assert Limits.from_settings(one, claim_until=None, until_idle=False).refill_at == 1


def test_a_429_is_recorded_as_throttled_not_as_a_failure():
    attempt_id, claim_id = uuid.uuid4(), uuid.uuid4()
    outcome = Outcome(status_code=429, headers={"retry-after": "7"}, body="", elapsed_ms=3)
    decision = Decision(FAILED, retry_in_s=7.0, pause_s=7.0)
    assert Result.of(attempt_id, claim_id, outcome, decision, ord=4).row() == {
        "id": attempt_id,
        "claim_id": claim_id,
        "status": FAILED,
        "response_status": 429,
        "response_headers": {"retry-after": "7"},
        "response_body": "",
        "elapsed_ms": 3,
        "error": None,
        "retry_in_s": 7.0,
        "disable": False,
        "ord": 4,
        "failure": False,
        "throttled": True,
        "pause_s": 7.0,
    }


def test_a_result_row_has_every_column_hookpost_record_reads():
    sql = (Path(hookpost.__file__).parent / "db/functions/070_record.sql").read_text()
    recordset = re.search(r"jsonb_to_recordset\(p_results\) AS r\((.*?)\)\s*\)", sql, re.S)
    assert recordset is not None
    columns = {column.split()[0] for column in recordset.group(1).split(",")}
    row = Result.of(uuid.uuid4(), uuid.uuid4(), Outcome(), Decision(FAILED), ord=1).row()
    assert set(row) == columns
