"""Stats buckets and histogram percentiles."""

from __future__ import annotations

import math
import random
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import pytest

from hookpost.stats import bucket_count, bucket_start, bucket_starts, percentile


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_buckets_cover_the_range_from_the_one_holding_its_start():
    starts = bucket_starts(at("2025-03-01T10:15:00+00:00"), at("2025-03-01T12:00:00+00:00"), "hour")
    assert starts == [at("2025-03-01T10:00:00+00:00"), at("2025-03-01T11:00:00+00:00")]
    assert (
        bucket_count(at("2025-03-01T10:15:00+00:00"), at("2025-03-01T12:00:01+00:00"), "hour") == 3
    )


def test_days_are_utc_days():
    paris = timezone(timedelta(hours=1))
    lo = datetime(2025, 3, 2, 0, 30, tzinfo=paris)  # still the 1st in UTC
    assert bucket_start(lo, "day") == datetime(2025, 3, 1, tzinfo=UTC)
    assert bucket_starts(lo, datetime(2025, 3, 3, tzinfo=UTC), "day") == [
        datetime(2025, 3, d, tzinfo=UTC) for d in (1, 2)
    ]


@pytest.mark.parametrize(
    ("values", "counts", "fraction", "expected"),
    [
        ([], [], 0.5, None),
        ([10], [0], 0.5, None),
        ([10, 20, 30, 40], [1, 1, 1, 1], 0.5, 20),
        ([10, 20, 30, 40], [1, 1, 1, 1], 0.95, 40),
        ([10, 20], [0, 3], 0.5, 20),
        ([7], [1], 0.0, 7),
        ([1, 2, 3], [98, 1, 1], 0.95, 1),
    ],
)
def test_percentile(values, counts, fraction, expected):
    assert percentile(values, counts, fraction) == expected


def test_percentile_of_a_histogram_matches_nearest_rank_over_the_samples():
    rng = random.Random(7)
    for _ in range(200):
        samples = [rng.randint(0, 50) for _ in range(rng.randint(1, 60))]
        histogram = sorted(Counter(samples).items())
        values, counts = [v for v, _ in histogram], [c for _, c in histogram]
        ordered = sorted(samples)
        for fraction in (0.5, 0.95):
            rank = max(1, math.ceil(fraction * len(ordered)))
            assert percentile(values, counts, fraction) == ordered[rank - 1]
