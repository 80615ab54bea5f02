"""`make dev`'s scheduler: every job once at start, then each on its own period
(HOOKPOST_<JOB>_EVERY_S), on one thread, until the stop event is set."""

from __future__ import annotations

import threading
import time

from hookpost.config import get_settings
from hookpost.db.pool import DatabaseUnavailable
from hookpost.jobs import log, run_once


class Schedule:
    """When each job is next due, on a monotonic clock; a period of 0 or less: never."""

    def __init__(self, every_s: dict[str, float], now: float) -> None:
        self.every_s = {job: every for job, every in every_s.items() if every > 0}
        self.next_at = dict.fromkeys(self.every_s, now)

    def take_due(self, now: float) -> list[str]:
        """The jobs due at `now`, each then set due again one period later. A job that ran
        late is not run again to catch up: runs never pile up."""
        due = [job for job, at in self.next_at.items() if at <= now]
        for job in due:
            self.next_at[job] = now + self.every_s[job]
        return due

    def wait_s(self, now: float) -> float | None:
        """How long until the next job is due; None when there is nothing to run."""
        return max(0.0, min(self.next_at.values()) - now) if self.next_at else None


def run_periodically(stop: threading.Event) -> None:
    schedule = Schedule(get_settings().jobs.every_s, time.monotonic())
    while not stop.is_set():
        for job in schedule.take_due(time.monotonic()):
            if stop.is_set():
                return
            # One failed run must not end the schedule: the next comes on its period.
            try:
                run_once(job, stop)
            except DatabaseUnavailable as exc:  # an outage: one line a run, not a traceback
                log.warning("job %s failed: %s", job, exc)
            except Exception:
                log.exception("job %s failed", job)
        wait = schedule.wait_s(time.monotonic())
        if wait is None:
            return
        stop.wait(wait)
