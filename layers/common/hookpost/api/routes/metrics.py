"""GET /v1/metrics: the delivery engine's state for Prometheus (text exposition format 0.0.4),
admin token only.

A scrape runs two statements, neither of which reads the finished attempts' history nor the
hourly rollup (EXPLAIN ANALYZE, median of 20, on 105,000 attempts: 1,400 pending, 117 in
flight, 20 applications, 200 subscriptions, 30 days in stats_hourly; range of four runs on a
shared 2-core machine):

- `METRICS_APPLICATIONS`, one row per application: pending, due and in-flight attempts through
  their partial indexes, open circuits from subscription_health, the running totals from
  stats_totals (a row per application). 0.9-1.7 ms, 47 buffers (today's rows of stats_hourly,
  which it read before, took 61). It grows with the attempts pending and in flight (75 ms, a
  parallel sequential scan, with 51,000 of the 105,000 pending), the subscriptions and the
  applications, never with history nor with the hour of the day.
- `METRICS_LATENCY`: the running latency histograms by outcome from stats_latency_totals.
  0.6-1.0 ms, 21 buffers for 852 keys (284 per outcome); it can grow to a few hundred keys per
  outcome, whatever the traffic or the history.

Counters (`*_total`, the histograms) are running totals beside the hourly rollup the
refresh_views job keeps (every minute under `make dev`): each write to stats_hourly adds what it
raised, once however often an hour is recomputed, and nothing is taken away when rollup rows or
the attempts they counted are deleted (025_stats_totals.sql). So they only grow (but for a
series that ends with its application), and are as current as
`hookpost_stats_refreshed_timestamp_seconds`; they start from what the rollup held when
migration 0012 made the totals. The histograms have an `outcome` label (succeeded, failed,
gave_up: the tries that went on the wire; a gave_up that never did, its subscription disabled,
has no response time) and no application label, to keep the series few. Gauges are read live.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import Router

from hookpost.db import queries
from hookpost.db.run import fetch_all, fetch_one

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Prometheus' default buckets, in seconds.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
OUTCOMES = ("succeeded", "failed", "gave_up")

Sample = tuple[str, dict[str, str], float]

router = Router()


@router.get(
    "/metrics",
    tags=["operations"],
    summary="Metrics for Prometheus (admin token)",
    description="Attempts pending and in flight, the due backlog and the age of its oldest"
    " attempt, open circuits (per application, read live); events and deliveries by outcome"
    " and latency histograms by outcome (succeeded, failed, gave_up) as counters that only grow"
    " (running totals kept by the statistics rollup). Two cheap queries per scrape; see the"
    " README's Metrics section.",
    responses={
        200: {
            "description": "the Prometheus text exposition format, version 0.0.4",
            "content": {CONTENT_TYPE: {"schema": {"type": "string"}}},
        }
    },
)
def metrics() -> Response[str]:
    applications = fetch_all(queries.METRICS_APPLICATIONS)
    latency = fetch_one(queries.METRICS_LATENCY)
    return Response(200, CONTENT_TYPE, render(applications, latency))


def render(applications: Sequence[dict[str, Any]], latency: dict[str, Any]) -> str:
    """The exposition of METRICS_APPLICATIONS' rows and METRICS_LATENCY's row. Every outcome's
    histogram is there, at zero before its first try."""
    families = [
        _family(
            "hookpost_application_info",
            "gauge",
            "Each application, by id (the `application` label elsewhere) and name",
            (("", {"application": str(a["id"]), "name": a["name"]}, 1) for a in applications),
        ),
        _family(
            "hookpost_attempts",
            "gauge",
            "Attempts waiting to be sent (pending: due, retrying later or scheduled) or on the"
            " wire (in_flight)",
            (
                ("", {"application": str(a["id"]), "status": status}, a[status])
                for a in applications
                for status in ("pending", "in_flight")
            ),
        ),
        _family(
            "hookpost_backlog_due_attempts",
            "gauge",
            "Pending attempts whose due time has come, held by an open circuit or not",
            _per_application(applications, "due"),
        ),
        _family(
            "hookpost_backlog_oldest_due_age_seconds",
            "gauge",
            "How long the oldest due attempt has been due; 0 without one",
            _per_application(applications, "oldest_due_s"),
        ),
        _family(
            "hookpost_circuits_open",
            "gauge",
            "Subscriptions whose circuit is open (half-open ones, whose probe is out, included)",
            _per_application(applications, "circuits_open"),
        ),
        _family(
            "hookpost_events_total",
            "counter",
            "Events accepted, as of the last statistics refresh",
            _per_application(applications, "events"),
        ),
        _family(
            "hookpost_deliveries_total",
            "counter",
            "Tries finished by outcome (failed: to be retried), as of the last statistics refresh",
            (
                ("", {"application": str(a["id"]), "outcome": outcome}, a[outcome])
                for a in applications
                for outcome in OUTCOMES
            ),
        ),
        _family(
            "hookpost_delivery_latency_seconds",
            "histogram",
            "Response time of the tries sent, by outcome, as of the last statistics refresh (each"
            " within 2% of the true time)",
            (
                sample
                for outcome in OUTCOMES
                for sample in _histogram(
                    {"outcome": outcome},
                    *_keys_of(outcome, latency),
                )
            ),
        ),
    ]
    if latency["refreshed_at"] is not None:
        families.append(
            _family(
                "hookpost_stats_refreshed_timestamp_seconds",
                "gauge",
                "When the statistics the counters come from were last brought up to date",
                (("", {}, latency["refreshed_at"].timestamp()),),
            )
        )
    return "".join(families)


def _keys_of(outcome: str, latency: dict[str, Any]) -> tuple[list[int], list[int]]:
    """One outcome's histogram keys and counts out of METRICS_LATENCY's parallel arrays."""
    rows = zip(
        latency["latency_outcome"], latency["latency_ms"], latency["latency_count"], strict=True
    )
    keys = [(ms, n) for of, ms, n in rows if of == outcome]
    return [ms for ms, _ in keys], [n for _, n in keys]


def _per_application(applications: Iterable[dict[str, Any]], column: str) -> Iterable[Sample]:
    return (("", {"application": str(a["id"])}, a[column]) for a in applications)


def _histogram(
    labels: dict[str, str], keys_ms: Sequence[int], counts: Sequence[int]
) -> Iterable[Sample]:
    """Cumulative buckets of a rollup histogram (`keys_ms[i]` seen `counts[i]` times)."""
    for bound in LATENCY_BUCKETS_S:
        below = sum(n for ms, n in zip(keys_ms, counts, strict=True) if ms <= bound * 1000)
        yield "_bucket", {**labels, "le": _number(bound)}, below
    yield "_bucket", {**labels, "le": "+Inf"}, sum(counts)
    yield "_sum", labels, sum(ms * n for ms, n in zip(keys_ms, counts, strict=True)) / 1000
    yield "_count", labels, sum(counts)


def _family(name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> str:
    lines = [f"# HELP {name} {_escape(help_text)}", f"# TYPE {name} {kind}"]
    for suffix, labels, value in samples:
        pairs = ",".join(f'{k}="{_escape(v, quotes=True)}"' for k, v in labels.items())
        lines.append(f"{name}{suffix}{'{' + pairs + '}' if pairs else ''} {_number(value)}")
    return "\n".join(lines) + "\n"


def _escape(text: str, *, quotes: bool = False) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if quotes else text


def _number(value: float) -> str:
    return repr(value) if isinstance(value, float) else str(value)
