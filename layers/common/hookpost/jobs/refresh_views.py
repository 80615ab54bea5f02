"""refresh_views: brings the hourly delivery statistics (stats_hourly) up to date.

Only the hours that can still change are recomputed: from the hour of the previous refresh
(less a margin) to now. Events count in the hour they were accepted and attempts in the hour
they finished, so older hours are final and the cost of a refresh follows recent traffic, never
the size of the history. A first refresh, or one after a long pause, catches up a day per
transaction, so an interrupted one resumes where it stopped.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

import psycopg

from hookpost.config import Settings
from hookpost.db import queries

# A row is counted in the hour of its timestamp but becomes visible when its transaction
# commits; a refresh looks back this far to catch the ones committed after the previous ran.
LATE_MARGIN = timedelta(minutes=10)
CHUNK = timedelta(days=1)


def chunks(
    lo: datetime, hi: datetime, step: timedelta = CHUNK
) -> Iterator[tuple[datetime, datetime]]:
    """[lo, hi) cut into consecutive ranges of at most `step`."""
    while lo < hi:
        yield lo, min(lo + step, hi)
        lo += step


def run(conn: psycopg.Connection, settings: Settings, stop: threading.Event) -> dict[str, int]:
    counts = {
        "stats_hours_refreshed": 0,
        "stats_buckets_written": 0,
        "stats_buckets_emptied": 0,
        "stats_refresh_skipped": 0,
    }
    window = conn.execute(queries.STATS_REFRESH_WINDOW, {"margin": LATE_MARGIN}).fetchone()
    for lo, hi in chunks(window["lo"], window["hi"]):
        if stop.is_set():
            break  # the next run goes on from here
        with conn.transaction():
            if not conn.execute(queries.STATS_REFRESH_LOCK).fetchone()["locked"]:
                counts["stats_refresh_skipped"] = 1
                break
            row = conn.execute(queries.STATS_REFRESH, {"lo": lo, "hi": hi}).fetchone()
            conn.execute(queries.STATS_MARK_REFRESHED, {"hi": hi})
        counts["stats_hours_refreshed"] += (hi - lo) // timedelta(hours=1)
        counts["stats_buckets_written"] += row["written"]
        counts["stats_buckets_emptied"] += row["emptied"]
    return counts
