"""Property tests of the retry schedule: whatever the policy, the status and the luck, the
budget is exact, delays stay within their bounds, and nothing but 2xx succeeds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hookpost.delivery.schedule import FAILED, GAVE_UP, SUCCEEDED, RetryPolicy, decide

policies = st.builds(
    RetryPolicy,
    fast_s=st.floats(0.1, 60),
    fast_max_s=st.floats(60, 3600),
    fast_count=st.integers(0, 12),
    slow_s=st.floats(600, 7200),
    slow_count=st.integers(0, 30),
    jitter=st.floats(0, 0.5),
)
luck = st.floats(0, 1, exclude_max=True)
failures = st.one_of(st.none(), st.integers(100, 199), st.integers(300, 409), st.integers(411, 599))


@settings(max_examples=300, derandomize=True)
@given(policy=policies, status=failures, rand=luck, retry_after=st.none() | st.floats(0, 10**6))
def test_a_failure_is_retried_exactly_within_the_budget(policy, status, rand, retry_after):
    budget = 1 + policy.fast_count + policy.slow_count
    for try_number in range(1, budget + 1):
        decision = decide(try_number, status, policy, retry_after_s=retry_after, rand=lambda: rand)
        if try_number == budget:
            assert decision.status == GAVE_UP and decision.retry_in_s is None
            continue
        assert decision.status == FAILED
        upper = max(policy.fast_max_s, policy.slow_s) * (1 + policy.jitter)
        assert 0 <= decision.retry_in_s <= upper
        if try_number > policy.fast_count:  # slow retries
            assert decision.retry_in_s >= policy.slow_s * (1 - policy.jitter)


@settings(max_examples=200, derandomize=True)
@given(policy=policies, try_number=st.integers(1, 100), rand=luck)
def test_fast_delays_never_shrink_before_the_cap(policy, try_number, rand):
    no_jitter = RetryPolicy(**{**policy.__dict__, "jitter": 0.0})
    first = decide(try_number, 500, no_jitter, rand=lambda: rand)
    second = decide(try_number + 1, 500, no_jitter, rand=lambda: rand)
    if try_number + 1 <= policy.fast_count:
        assert second.retry_in_s >= first.retry_in_s


@settings(max_examples=200, derandomize=True)
@given(policy=policies, status=st.integers(200, 299), try_number=st.integers(1, 100))
def test_every_2xx_succeeds_at_any_try(policy, status, try_number):
    assert decide(try_number, status, policy).status == SUCCEEDED


@settings(max_examples=200, derandomize=True)
@given(
    policy=policies.filter(lambda p: p.fast_count + p.slow_count > 0),
    status=st.sampled_from([429, 503]),
    retry_after=st.floats(0, 10**6),
    rand=luck,
)
def test_retry_after_is_waited_at_least_up_to_the_slow_delay(policy, status, retry_after, rand):
    decision = decide(1, status, policy, retry_after_s=retry_after, rand=lambda: rand)
    assert decision.retry_in_s >= min(retry_after, policy.slow_s)
