"""The retry schedule and outcome rules, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hookpost.delivery.schedule import (
    FAILED,
    GAVE_UP,
    SUCCEEDED,
    Decision,
    RetryPolicy,
    base_delay,
    decide,
    parse_retry_after,
)

DEFAULT = RetryPolicy()
NO_JITTER = RetryPolicy(jitter=0.0)


def middle() -> float:
    return 0.5  # rand() at the middle of [0, 1): no jitter at all


def test_default_schedule_is_fast_doubling_then_hourly():
    # 33 tries: the first, 8 fast retries (5 s doubling to 5 min), 24 slow ones (hourly).
    delays = [base_delay(n, DEFAULT) for n in range(1, 34)]
    assert delays == [5, 10, 20, 40, 80, 160, 300, 300] + [3600] * 24 + [None]


@pytest.mark.parametrize(
    ("try_number", "delay"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (5, 60.0), (6, 60.0), (7, None)],
)
def test_counts_and_caps_are_configurable(try_number, delay):
    policy = RetryPolicy(fast_s=1, fast_max_s=5, fast_count=4, slow_s=60, slow_count=2)
    assert base_delay(try_number, policy) == delay


def test_no_retries_at_all():
    policy = RetryPolicy(fast_count=0, slow_count=0)
    assert decide(1, 500, policy, rand=middle) == Decision(GAVE_UP, counts_against_circuit=True)


def test_a_huge_fast_count_does_not_overflow():
    policy = RetryPolicy(fast_count=10_000)
    assert base_delay(5_000, policy) == policy.fast_max_s


def test_tries_are_numbered_from_one():
    with pytest.raises(ValueError):
        base_delay(0, DEFAULT)


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_succeeds(status):
    assert decide(1, status, DEFAULT) == Decision(SUCCEEDED)


def test_success_on_the_last_try_still_succeeds():
    assert decide(33, 200, DEFAULT) == Decision(SUCCEEDED)


def test_410_gives_up_and_disables():
    assert decide(1, 410, DEFAULT) == Decision(GAVE_UP, disable_subscription=True)


@pytest.mark.parametrize("status", [None, 100, 301, 302, 304, 400, 404, 500, 502, 503])
def test_anything_else_fails_with_a_retry_and_counts_towards_the_circuit(status):
    decision = decide(1, status, NO_JITTER)
    assert decision == Decision(FAILED, retry_in_s=5.0, counts_against_circuit=True)


def test_a_429_is_pacing_not_failing_as_far_as_the_circuit_goes():
    assert decide(1, 429, NO_JITTER) == Decision(FAILED, retry_in_s=5.0)
    assert decide(33, 429, DEFAULT) == Decision(GAVE_UP)


def test_the_last_failure_gives_up():
    assert decide(33, 500, DEFAULT) == Decision(GAVE_UP, counts_against_circuit=True)
    assert decide(32, 500, NO_JITTER) == Decision(
        FAILED, retry_in_s=3600.0, counts_against_circuit=True
    )


@pytest.mark.parametrize(("rand", "delay"), [(0.0, 8.0), (0.5, 10.0), (0.999999, 12.0)])
def test_jitter_spreads_the_delay_both_ways(rand, delay):
    decision = decide(2, 500, DEFAULT, rand=lambda: rand)
    assert decision.retry_in_s == pytest.approx(delay, abs=1e-4)


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_a_floor_capped_at_the_slow_delay(status):
    assert decide(1, status, NO_JITTER, retry_after_s=120).retry_in_s == 120
    assert decide(1, status, NO_JITTER, retry_after_s=1).retry_in_s == 5  # never sooner
    assert decide(1, status, NO_JITTER, retry_after_s=86_400).retry_in_s == 3600


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_pauses_the_subscription_up_to_the_slow_delay(status):
    assert decide(1, status, NO_JITTER, retry_after_s=120).pause_s == 120
    assert decide(1, status, NO_JITTER, retry_after_s=86_400).pause_s == 3600
    assert decide(1, status, NO_JITTER).pause_s is None


def test_retry_after_counts_only_for_429_and_503():
    assert decide(1, 500, NO_JITTER, retry_after_s=120).retry_in_s == 5
    assert decide(1, 301, NO_JITTER, retry_after_s=120).retry_in_s == 5
    assert decide(1, 500, NO_JITTER, retry_after_s=120).pause_s is None


def test_retry_after_does_not_extend_the_budget():
    assert decide(33, 429, DEFAULT, retry_after_s=10) == Decision(GAVE_UP, pause_s=10)


NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("Wed, 01 Jan 2025 12:01:30 GMT", 90.0),
        ("Wed, 01 Jan 2025 11:00:00 GMT", 0.0),  # in the past: now
        ("Wed, 01 Jan 2025 12:00:10 -0000", 10.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("\u0661\u0662", None),  # Arabic-Indic digits are not delay-seconds
    ],
)
def test_parse_retry_after(value, seconds):
    assert parse_retry_after(value, NOW) == seconds


def test_parse_retry_after_date_is_relative_to_now():
    later = NOW + timedelta(hours=1)
    assert parse_retry_after("Wed, 01 Jan 2025 13:00:00 GMT", later) == 0.0
