"""render(): METRICS_APPLICATIONS' rows and METRICS_LATENCY's row as the Prometheus text format,
read back with prometheus_client's parser."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hookpost.api.routes.metrics import LATENCY_BUCKETS_S, OUTCOMES, render

APP = uuid.UUID("0191a2b3-0000-7000-8000-000000000001")
OTHER = uuid.UUID("0191a2b3-0000-7000-8000-000000000002")
REFRESHED = datetime(2026, 12, 1, 10, 0, 5, tzinfo=UTC)


def application(app_id: uuid.UUID, name: str, **counts: float) -> dict:
    row = dict.fromkeys(
        ("pending", "in_flight", "due", "oldest_due_s", "circuits_open", "events", *OUTCOMES), 0
    )
    return {"id": app_id, "name": name, **row, **counts}


def latency(keys: dict[str, dict[int, int]], refreshed_at: datetime | None = REFRESHED) -> dict:
    """METRICS_LATENCY's row: parallel arrays ordered by outcome, then key."""
    rows = [(o, ms, n) for o in sorted(keys) for ms, n in sorted(keys[o].items())]
    return {
        "refreshed_at": refreshed_at,
        "latency_outcome": [o for o, _, _ in rows],
        "latency_ms": [ms for _, ms, _ in rows],
        "latency_count": [n for _, _, n in rows],
    }


def parse(text: str) -> dict[str, tuple[str, dict[tuple[str, tuple], float]]]:
    """Family name -> (type, {(sample name, sorted labels): value})."""
    assert text.endswith("\n")
    return {
        family.name: (
            family.type,
            {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples},
        )
        for family in text_string_to_metric_families(text)
    }


def histogram(families, outcome: str) -> dict[str, float]:
    _, samples = families["hookpost_delivery_latency_seconds"]
    got = {}
    for (name, labels), value in samples.items():
        labels = dict(labels)
        if labels.pop("outcome") != outcome:
            continue
        suffix = name.removeprefix("hookpost_delivery_latency_seconds_")
        got[labels["le"] if suffix == "bucket" else suffix] = value
    return got


def test_every_outcome_has_its_histogram_from_its_own_keys():
    keys = {
        "succeeded": {3: 2, 10: 1, 240: 4, 12000: 1},
        "failed": {51: 1, 5000: 3},
        "gave_up": {15000: 2},
    }

    families = parse(render([application(APP, "shop")], latency(keys)))

    assert families["hookpost_delivery_latency_seconds"][0] == "histogram"
    for outcome in OUTCOMES:
        own = keys[outcome]
        want = {
            repr(bound): sum(n for ms, n in own.items() if ms <= bound * 1000)
            for bound in LATENCY_BUCKETS_S
        }
        want |= {"+Inf": sum(own.values()), "count": sum(own.values())}
        want["sum"] = pytest.approx(sum(ms * n for ms, n in own.items()) / 1000)
        assert histogram(families, outcome) == want, outcome
    assert histogram(families, "succeeded")["0.005"] == 2  # a key on a bound is within it
    assert histogram(families, "succeeded")["0.01"] == 3


def test_an_outcome_without_tries_is_at_zero_and_there_is_no_refresh_time_before_one():
    families = parse(render([], latency({}, refreshed_at=None)))

    for outcome in OUTCOMES:
        assert set(histogram(families, outcome).values()) == {0}
        assert len(histogram(families, outcome)) == len(LATENCY_BUCKETS_S) + 3
    assert "hookpost_stats_refreshed_timestamp_seconds" not in families
    assert families["hookpost_deliveries"] == ("counter", {})


def test_counters_and_gauges_per_application():
    rows = [
        application(
            APP,
            "shop",
            pending=5,
            in_flight=2,
            due=3,
            oldest_due_s=1.5,
            circuits_open=1,
            events=10**12,
            succeeded=7,
            failed=2,
            gave_up=1,
        ),
        application(OTHER, 'a "quoted" \\ name\non two lines'),
    ]

    families = parse(render(rows, latency({"succeeded": {10: 1}})))

    app = (("application", str(APP)),)
    assert families["hookpost_events"] == (
        "counter",
        {
            ("hookpost_events_total", app): 10**12,
            ("hookpost_events_total", (("application", str(OTHER)),)): 0,
        },
    )
    deliveries = families["hookpost_deliveries"][1]
    assert {
        dict(labels)["outcome"]: value
        for (_, labels), value in deliveries.items()
        if dict(labels)["application"] == str(APP)
    } == {"succeeded": 7, "failed": 2, "gave_up": 1}
    assert len(deliveries) == 2 * len(OUTCOMES)
    assert (
        families["hookpost_attempts"][1][("hookpost_attempts", (*app, ("status", "in_flight")))]
        == 2
    )
    assert (
        families["hookpost_backlog_oldest_due_age_seconds"][1][
            ("hookpost_backlog_oldest_due_age_seconds", app)
        ]
        == 1.5
    )
    info = families["hookpost_application_info"][1]
    assert (
        info[
            (
                "hookpost_application_info",
                (("application", str(OTHER)), ("name", 'a "quoted" \\ name\non two lines')),
            )
        ]
        == 1
    )
    assert families["hookpost_stats_refreshed_timestamp_seconds"] == (
        "gauge",
        {("hookpost_stats_refreshed_timestamp_seconds", ()): REFRESHED.timestamp()},
    )
