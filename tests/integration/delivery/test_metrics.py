"""GET /v1/metrics: who may read it, and what it says after real deliveries to a loopback
receiver (successes, a retried failure, a 410, a failing receiver whose circuit opens with a
backlog held behind it, a request held on the wire), parsed as Prometheus parses it."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from hookpost.jobs import run_once
from support import ADMIN, create_tenant
from support_delivery import (
    Received,
    count_attempts,
    delivering,
    failing_first,
    health_of,
    settled,
)
from support_process import wait_for

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
FAMILIES = {
    "hookpost_application_info": "gauge",
    "hookpost_attempts": "gauge",
    "hookpost_backlog_due_attempts": "gauge",
    "hookpost_backlog_oldest_due_age_seconds": "gauge",
    "hookpost_circuits_open": "gauge",
    "hookpost_events": "counter",
    "hookpost_deliveries": "counter",
    "hookpost_delivery_latency_seconds": "histogram",
    "hookpost_stats_refreshed_timestamp_seconds": "gauge",
}
BUCKETS = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0")


class Scrape:
    """One answer of GET /v1/metrics, parsed whole by prometheus_client."""

    def __init__(self, api) -> None:
        response = api.get("/v1/metrics", headers=ADMIN)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == CONTENT_TYPE
        assert response.text.endswith("\n")
        self.families = {f.name: f for f in text_string_to_metric_families(response.text)}

    def value(self, sample: str, **labels: str) -> float:
        (value,) = [
            s.value
            for family in self.families.values()
            for s in family.samples
            if s.name == sample and s.labels == labels
        ]
        return value

    def of(self, application: str) -> dict[str, float]:
        """The application's gauges and counters, by a short name."""
        app = {"application": application}
        return {
            "pending": self.value("hookpost_attempts", **app, status="pending"),
            "in_flight": self.value("hookpost_attempts", **app, status="in_flight"),
            "due": self.value("hookpost_backlog_due_attempts", **app),
            "oldest_due_s": self.value("hookpost_backlog_oldest_due_age_seconds", **app),
            "circuits_open": self.value("hookpost_circuits_open", **app),
            "events": self.value("hookpost_events_total", **app),
            **{
                outcome: self.value("hookpost_deliveries_total", **app, outcome=outcome)
                for outcome in ("succeeded", "failed", "gave_up")
            },
        }

    def latency(self) -> dict[str, float]:
        """The succeeded deliveries' histogram: cumulative counts by `le`, `sum` and `count`."""
        name = "hookpost_delivery_latency_seconds"
        outcome = {"outcome": "succeeded"}
        histogram = {
            le: self.value(f"{name}_bucket", **outcome, le=le) for le in (*BUCKETS, "+Inf")
        }
        histogram["sum"] = self.value(f"{name}_sum", **outcome)
        histogram["count"] = self.value(f"{name}_count", **outcome)
        return histogram


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_metrics_need_the_admin_token(api, tenant):
    missing = api.get("/v1/metrics")
    assert missing.status_code == 401
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert missing.headers["www-authenticate"] == 'Bearer realm="hookpost"'
    assert api.get("/v1/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    by_key = api.get("/v1/metrics", headers=tenant.headers)
    assert by_key.status_code == 403
    assert by_key.json()["detail"] == "this route needs the admin token"


def test_names_reach_prometheus_intact(api):
    name = 'a "quoted" \\ name\nover two lines'
    tenant = create_tenant(api, name)

    info = Scrape(api).value("hookpost_application_info", application=tenant.id, name=name)

    assert info == 1


def test_metrics_after_real_deliveries(
    api, tenant, other_tenant, receiver, fast, env, database_url
):
    # The circuit opens after 3 failures and stays open for the test; a request held on the
    # wire does not time out.
    env(
        HOOKPOST_CIRCUIT_FAILURES="3",
        HOOKPOST_CIRCUIT_COOLDOWN_S="600",
        HOOKPOST_DELIVERY_TIMEOUT_S="30",
    )
    release = threading.Event()
    flaky = failing_first(1)

    async def answer(received: Received) -> web.Response:
        if received.path == "/gone":
            return web.Response(status=410)
        if received.path == "/down":
            return web.Response(status=500)
        if received.path == "/flaky":
            return flaky(received)
        if received.path == "/held":
            while not release.is_set():
                await asyncio.sleep(0.01)
        return web.Response(text="ok")

    receiver.answer = answer
    base = f"http://127.0.0.1:{receiver.port}"
    for name in ("invoice.paid", "invoice.voided", "invoice.refunded", "invoice.held"):
        tenant.event_type(name)
    tenant.subscription(url=f"{base}/ok", event_types=["invoice.paid"])
    tenant.subscription(url=f"{base}/gone", event_types=["invoice.voided"])
    tenant.subscription(url=f"{base}/flaky", event_types=["invoice.refunded"])
    tenant.subscription(url=f"{base}/held", event_types=["invoice.held"])
    other_tenant.event_type("invoice.paid")
    down = other_tenant.subscription(url=f"{base}/down")
    # Counters run since midnight and the histogram covers every application: compare it with
    # what it held before this test's deliveries.
    run_once("refresh_views")
    before = Scrape(api).latency()

    with delivering():
        sent = [tenant.send() for _ in range(4)]
        sent.append(tenant.send("invoice.voided"))
        refunded = tenant.send("invoice.refunded")
        for _ in range(4):
            other_tenant.send()
        scheduled = other_tenant.send(
            deliver_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat()
        )
        for event in sent:
            settled(tenant, event["id"])
        settled(tenant, refunded["id"], count=2)
        wait_for(lambda: health_of(other_tenant, down)["circuit"] == "open", what="open circuit")

        held = tenant.send("invoice.held")
        wait_for(lambda: any(r.path == "/held" for r in receiver.requests), what="held request")
        on_the_wire = Scrape(api).of(tenant.id)
        release.set()
        settled(tenant, held["id"])

    assert on_the_wire["in_flight"] == 1
    assert on_the_wire["pending"] == 0

    # What the API says of the failing receiver's attempts, once every retry is due.
    def held_back() -> list[datetime]:
        response = other_tenant.get("/attempts", params={"status": "pending", "limit": 200})
        due = [at(a["due_at"]) for a in response.json()["data"] if a["event_id"] != scheduled["id"]]
        return due if max(due) <= datetime.now(UTC) else []

    wait_for(lambda: held_back() != [], what="every held attempt due")
    first_due = min(held_back())
    pending = count_attempts(other_tenant, "pending")
    failed = count_attempts(other_tenant, "failed")
    assert pending >= 2 and failed >= 3

    started = time.time()
    run_once("refresh_views")
    scrape_from = time.time()
    scrape = Scrape(api)
    scrape_to = time.time()

    assert {name: family.type for name, family in scrape.families.items()} == FAMILIES
    assert started <= scrape.value("hookpost_stats_refreshed_timestamp_seconds") <= scrape_from
    assert scrape.value("hookpost_application_info", application=tenant.id, name="tenant-a") == 1
    assert scrape.of(tenant.id) == {
        "pending": 0,
        "in_flight": 0,
        "due": 0,
        "oldest_due_s": 0,
        "circuits_open": 0,
        "events": 7,
        "succeeded": 6,  # 4 paid, the refund's retry, the held one
        "failed": 1,  # the refund's first try
        "gave_up": 1,  # the 410
    }
    backlog = scrape.of(other_tenant.id)
    oldest_due_s = backlog.pop("oldest_due_s")
    assert backlog == {
        "pending": pending,
        "in_flight": 0,
        "due": pending - 1,  # all but the scheduled event's
        "circuits_open": 1,
        "events": 5,
        "succeeded": 0,
        "failed": failed,
        "gave_up": 0,
    }
    assert (
        scrape_from - first_due.timestamp() - 0.001
        <= oldest_due_s
        <= scrape_to - first_due.timestamp() + 0.001
    )

    # The histogram gained this test's six successes, each under the rollup's key for its time.
    elapsed = [
        a["response"]["elapsed_ms"]
        for event in [*sent, refunded, held]
        for a in settled(tenant, event["id"], count=2 if event is refunded else 1)
        if a["status"] == "succeeded"
    ]
    with psycopg.connect(database_url) as db:
        keys = [
            db.execute("SELECT hookpost_latency_bucket(%s)", (ms,)).fetchone()[0] for ms in elapsed
        ]
    after = scrape.latency()
    gained = {name: after[name] - before[name] for name in after}
    assert abs(gained.pop("sum") - sum(keys) / 1000) < 1e-6
    assert gained == {
        **{le: sum(key <= float(le) * 1000 for key in keys) for le in BUCKETS},
        "+Inf": 6,
        "count": 6,
    }
