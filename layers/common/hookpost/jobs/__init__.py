"""The scheduler's jobs, one module each, run by name: by the scheduler Lambda (one EventBridge
rule per job, the job named in the rule's input), by `hookpost job NAME`, and on their periods
by `make dev`. Each reports counts of what it did; `run` logs them and adds them as metrics. A job
that loops checks the stop event between steps, so that `make dev` stops promptly. A count whose
name ends in `_seconds` is a duration, and its metric is in seconds."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from aws_lambda_powertools.metrics import EphemeralMetrics, Metrics, MetricUnit

from hookpost.config import Settings, get_settings
from hookpost.db.pool import connection
from hookpost.jobs import cleanup, recover_leases, refresh_views

METRICS_NAMESPACE = "Hookpost"
METRICS_SERVICE = "scheduler"

Job = Callable[[psycopg.Connection, Settings, threading.Event], dict[str, int]]

JOBS: dict[str, Job] = {
    "recover_leases": recover_leases.run,
    "refresh_views": refresh_views.run,
    "cleanup": cleanup.run,
}

log = logging.getLogger(__name__)


class UnknownJob(ValueError):
    pass


@dataclass(frozen=True)
class JobReport:
    job: str
    counts: dict[str, int]
    elapsed_ms: float

    def as_dict(self) -> dict[str, Any]:
        return {"job": self.job, "counts": self.counts, "elapsed_ms": self.elapsed_ms}


def run(
    name: str | None, metrics: Metrics | EphemeralMetrics, stop: threading.Event | None = None
) -> JobReport:
    """Run one job; log what it did and add its counts and duration to `metrics`, with the job
    as a dimension (the caller flushes them)."""
    job = JOBS.get(name or "")
    if job is None:
        raise UnknownJob(f"unknown job {name!r}; the jobs are {', '.join(JOBS)}")
    started = time.perf_counter()
    with connection() as conn:
        counts = job(conn, get_settings(), stop or threading.Event())
    report = JobReport(name, counts, round((time.perf_counter() - started) * 1000, 1))
    summary = ", ".join(f"{key} {value}" for key, value in counts.items())
    log.info("%s: %s", name, summary, extra=report.as_dict())
    metrics.add_dimension(name="job", value=name)
    for key, value in counts.items():
        unit = MetricUnit.Seconds if key.endswith("_seconds") else MetricUnit.Count
        metrics.add_metric(name=metric_name(key), unit=unit, value=value)
    metrics.add_metric(name="Duration", unit=MetricUnit.Milliseconds, value=report.elapsed_ms)
    return report


def metric_name(count: str) -> str:
    """A count's metric name, in the CamelCase of the other Hookpost metrics."""
    return "".join(part.title() for part in count.split("_"))


def run_once(name: str, stop: threading.Event | None = None) -> JobReport:
    """Run one job outside Lambda and flush its metrics (EMF, on stdout) straight away; its own
    metrics set keeps them apart from any other thread's."""
    metrics = EphemeralMetrics(namespace=METRICS_NAMESPACE, service=METRICS_SERVICE)
    report = run(name, metrics, stop)
    metrics.flush_metrics()
    return report
