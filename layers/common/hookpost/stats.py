"""Delivery statistics as the stats route answers them: which buckets a range covers, and
percentiles read off a latency histogram. Pure functions; the data comes from stats_hourly."""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

STEP = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
# A month of hours or a year of days in one answer.
MAX_BUCKETS = {"hour": 744, "day": 366}
# The range asked for when `from` is left out, ending at `to`.
DEFAULT_SPAN = {"hour": timedelta(hours=24), "day": timedelta(days=30)}


def bucket_start(at: datetime, granularity: str) -> datetime:
    """The start (UTC) of the bucket holding `at`."""
    start = at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return start.replace(hour=0) if granularity == "day" else start


def bucket_count(lo: datetime, hi: datetime, granularity: str) -> int:
    """How many buckets overlap [lo, hi)."""
    return math.ceil((hi - bucket_start(lo, granularity)) / STEP[granularity])


def bucket_starts(lo: datetime, hi: datetime, granularity: str) -> list[datetime]:
    """The starts of the buckets that overlap [lo, hi), in order."""
    first, step = bucket_start(lo, granularity), STEP[granularity]
    return [first + i * step for i in range(bucket_count(lo, hi, granularity))]


def percentile(values: Sequence[int], counts: Sequence[int], fraction: float) -> int | None:
    """The nearest-rank percentile of a histogram (`values[i]` seen `counts[i]` times, values
    ascending): the smallest value at least `fraction` of the samples are at or below, as
    PostgreSQL's percentile_disc computes it. None without samples."""
    cumulative = list(itertools.accumulate(counts))
    if not cumulative or cumulative[-1] == 0:
        return None
    rank = max(1, math.ceil(fraction * cumulative[-1]))
    return values[bisect.bisect_left(cumulative, rank)]
