"""GET /v1/metrics: who may read it, and what it says after real deliveries to a loopback
receiver (successes, a retried failure, a 410, a failing receiver whose circuit opens with a
backlog held behind it, a request held on the wire), parsed as Prometheus parses it; and its
counters, which only grow: across midnight, an hour recomputed again and again, rollup rows and
counted attempts deleted."""

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
from support_jobs import connect, insert_attempt, insert_event
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
OUTCOMES = ("succeeded", "failed", "gave_up")
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

    def latency(self, outcome: str = "succeeded") -> dict[str, float]:
        """One outcome's histogram: cumulative counts by `le`, `sum` and `count`."""
        name = "hookpost_delivery_latency_seconds"
        labels = {"outcome": outcome}
        histogram = {le: self.value(f"{name}_bucket", **labels, le=le) for le in (*BUCKETS, "+Inf")}
        histogram["sum"] = self.value(f"{name}_sum", **labels)
        histogram["count"] = self.value(f"{name}_count", **labels)
        return histogram

    def latencies(self) -> dict[str, dict[str, float]]:
        return {outcome: self.latency(outcome) for outcome in OUTCOMES}


def gained(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before[name] for name in after}


def histogram_of(keys: list[int]) -> dict[str, float]:
    """What a histogram gains from tries under these rollup keys (ms)."""
    return {
        **{le: sum(key <= float(le) * 1000 for key in keys) for le in BUCKETS},
        "+Inf": len(keys),
        "sum": sum(keys) / 1000,
        "count": len(keys),
    }


def assert_histogram(got: dict[str, float], keys: list[int]) -> None:
    want = histogram_of(keys)
    assert abs(got["sum"] - want["sum"]) < 1e-6, (got, keys)
    assert {k: v for k, v in got.items() if k != "sum"} == {
        k: v for k, v in want.items() if k != "sum"
    }, keys


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
    # The histograms cover every application: compare them with what they held before this
    # test's deliveries.
    run_once("refresh_views")
    before = Scrape(api).latencies()

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

    # Each outcome's histogram gained this test's tries of that outcome, each under the rollup's
    # key for its time: the six successes, the refund's first try and the failing receiver's
    # tries, the 410.
    with psycopg.connect(database_url) as db:
        rows = db.execute(
            "SELECT status::text, hookpost_latency_bucket(elapsed_ms) FROM attempts"
            " WHERE application_id IN (%s, %s) AND finished_at IS NOT NULL",
            (tenant.id, other_tenant.id),
        ).fetchall()
    keys = {outcome: [key for status, key in rows if status == outcome] for outcome in OUTCOMES}
    assert {outcome: len(k) for outcome, k in keys.items()} == {
        "succeeded": 6,
        "failed": 1 + failed,
        "gave_up": 1,
    }
    after = scrape.latencies()
    for outcome in OUTCOMES:
        assert_histogram(gained(after[outcome], before[outcome]), keys[outcome])


def test_counters_only_grow_across_midnight_recomputes_and_deletions(api, tenant, database_url):
    """Tries written straight into the tables at chosen times: late yesterday, then today. The
    rollup is driven by setting when it last ran, as tests/integration/jobs does."""
    subscription = tenant.subscription()
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    # Before 23:00, so that yesterday's rollup rows, deleted below, are of hours the refresh no
    # longer recomputes even just after midnight (as any cleanup of old statistics must be).
    late_yesterday = midnight - timedelta(minutes=90)

    def refresh_from(at: datetime) -> Scrape:
        """The rollup recomputed from `at`'s hour on, as if it had last run then; a scrape."""
        with connect(database_url) as db:
            db.execute(
                "UPDATE stats_refresh SET refreshed_at = %(at)s WHERE refreshed_at > %(at)s",
                {"at": at},
            )
        run_once("refresh_views")
        return Scrape(api)

    def deliveries(at: datetime, tries: list[tuple[str, int | None]]) -> None:
        with connect(database_url) as db:
            for status, elapsed_ms in tries:
                event = insert_event(db, tenant.id, at)
                insert_attempt(
                    db, event, subscription["id"], status, finished_at=at, elapsed_ms=elapsed_ms
                )

    def counters(scrape: Scrape) -> dict[str, float]:
        counts = scrape.of(tenant.id)
        return {name: counts[name] for name in ("events", *OUTCOMES)}

    # Whatever other tests left in these hours unrolled is counted before the baseline.
    run_once("refresh_views")
    before = refresh_from(late_yesterday - timedelta(hours=1)).latencies()
    deliveries(
        late_yesterday,
        [
            ("succeeded", 30),
            ("succeeded", 120),
            ("failed", 5000),
            ("gave_up", 15000),
            # Given up unsent (its subscription disabled): counted, no response time.
            ("gave_up", None),
        ],
    )
    yesterday = refresh_from(late_yesterday - timedelta(hours=1))
    assert counters(yesterday) == {"events": 5, "succeeded": 2, "failed": 1, "gave_up": 2}
    with connect(database_url) as db:
        key = {
            ms: db.execute("SELECT hookpost_latency_bucket(%s) AS k", (ms,)).fetchone()["k"]
            for ms in (30, 120, 5000, 15000, 40, 2500)
        }
    wanted = {"succeeded": [key[30], key[120]], "failed": [key[5000]], "gave_up": [key[15000]]}
    for outcome in OUTCOMES:
        assert_histogram(gained(yesterday.latency(outcome), before[outcome]), wanted[outcome])

    # The day changes: yesterday's tries stay counted, today's add to them, and recomputing
    # both days' hours again (and again) counts nothing twice.
    now = datetime.now(UTC)
    deliveries(now, [("succeeded", 40), ("failed", 2500)])
    for _ in range(2):
        today = refresh_from(late_yesterday - timedelta(hours=1))
        assert counters(today) == {"events": 7, "succeeded": 3, "failed": 2, "gave_up": 2}
        wanted_today = {**wanted, "succeeded": [*wanted["succeeded"], key[40]]}
        wanted_today["failed"] = [*wanted["failed"], key[2500]]
        for outcome in OUTCOMES:
            assert_histogram(gained(today.latency(outcome), before[outcome]), wanted_today[outcome])

    # Yesterday's rollup rows deleted, as a retention cleanup of old statistics would, and
    # today's tries deleted from under the rollup (their subscription deleted, say), then the
    # latest hours recomputed twice: nothing goes down.
    with connect(database_url) as db:
        db.execute(
            "DELETE FROM stats_hourly WHERE application_id = %s AND hour < %s",
            (tenant.id, midnight),
        )
        db.execute(
            "DELETE FROM attempts WHERE application_id = %s AND finished_at >= %s",
            (tenant.id, midnight),
        )
    for _ in range(2):
        after = refresh_from(now)
        assert counters(after) == counters(today)
        assert after.latencies() == today.latencies()
