"""GET /v1/applications/{id}/stats: buckets of an hour or a day, validated, one application's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from hookpost.delivery import claims
from hookpost.jobs import run_once
from support_jobs import connect, insert_attempt, insert_event
from support_process import wait_for


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection]:
    with connect(database_url) as conn:
        yield conn


@pytest.fixture
def day() -> datetime:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=5)


def rfc3339(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def delivered(db, tenant, at: datetime, elapsed_ms: list[int], status: str = "succeeded"):
    subscription = tenant.subscription()
    for ms in elapsed_ms:
        event = insert_event(db, tenant.id, at)
        insert_attempt(db, event, subscription["id"], status, finished_at=at, elapsed_ms=ms)


def refresh_since(db, at: datetime) -> None:
    db.execute(
        "INSERT INTO stats_refresh (refreshed_at) VALUES (%(at)s)"
        " ON CONFLICT (singleton) DO UPDATE SET refreshed_at = excluded.refreshed_at",
        {"at": at},
    )
    run_once("refresh_views")


def latency_bucket(db, ms: int) -> int:
    return db.execute("SELECT hookpost_latency_bucket(%s) AS b", (ms,)).fetchone()["b"]


def test_the_current_hour_after_deliveries(db, tenant):
    tenant.event_type()
    tenant.subscription()
    sent = [tenant.send()["id"] for _ in range(3)]
    # What the delivery engine records when the receiver answers.
    db.execute(
        "UPDATE attempts SET status = 'succeeded', finished_at = now(), elapsed_ms = 120"
        " WHERE event_id = ANY(%s)",
        (sent,),
    )
    run_once("refresh_views")

    response = tenant.get("/stats")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["granularity"] == "hour"
    assert len(body["data"]) in (24, 25)  # the last 24 hours, touching 25 buckets unless at :00
    current = body["data"][-1]
    assert current["start"] == rfc3339(datetime.now(UTC).replace(minute=0, second=0, microsecond=0))
    assert current["events"] == 3
    assert current["attempts"] == {
        "succeeded": 3,
        "failed": 0,
        "gave_up": 0,
        "superseded": 0,
        "expired": 0,
    }
    assert current["latency_ms"] == {"p50": 120, "p95": 120}
    assert body["refreshed_at"] is not None
    empty = body["data"][0]
    assert empty["events"] == 0 and empty["latency_ms"] == {"p50": None, "p95": None}


def test_attempts_that_ended_unsent_are_counted_superseded_or_expired(db, tenant):
    tenant.event_type()
    tenant.subscription(debounce_s=60)
    # Three quick edits of one record: the first two are replaced by the third, unsent.
    for n in range(3):
        tenant.send(payload={"edit": n}, ordering_key="order-1")
    plain = tenant.subscription(event_types=["invoice.paid"])
    expires_at = datetime.now(UTC) + timedelta(seconds=0.5)
    dated = tenant.send(payload={"edit": 9}, ordering_key="order-2", expires_at=rfc3339(expires_at))
    wait_for(lambda: datetime.now(UTC) > expires_at, timeout=5, what="the event's expiry")
    # What the deliver loop does on each pass to attempts no claim reached before their expiry.
    assert claims.expire(db) >= 1
    statuses = db.execute(
        "SELECT subscription_id, status::text AS status, finished_at FROM attempts"
        " WHERE application_id = %s",
        (tenant.id,),
    ).fetchall()
    assert sorted(r["status"] for r in statuses) == [
        "expired",
        "expired",
        "pending",
        "superseded",
        "superseded",
    ]
    assert all(r["finished_at"] is not None for r in statuses if r["status"] != "pending")
    assert any(str(r["subscription_id"]) == plain["id"] for r in statuses)
    run_once("refresh_views")

    hours = tenant.get("/stats").json()["data"]
    days = tenant.get("/stats", params={"granularity": "day"}).json()["data"]

    def totals(buckets: list[dict]) -> dict[str, int]:
        return {k: sum(b["attempts"][k] for b in buckets) for k in buckets[0]["attempts"]}

    unsent = {"succeeded": 0, "failed": 0, "gave_up": 0, "superseded": 2, "expired": 2}
    assert dated["attempts_created"] == 2
    assert sum(b["events"] for b in hours) == 4
    assert totals(hours) == unsent
    assert totals(days) == unsent
    assert (
        "expired"
        in tenant.api.get("/v1/openapi.json").json()["components"]["schemas"]["StatsAttempts"][
            "properties"
        ]
    )


def test_days_roll_hours_up_with_percentiles_of_the_whole_day(db, tenant, day):
    delivered(db, tenant, day + timedelta(hours=9), [10, 20, 30, 40, 1000])
    delivered(db, tenant, day + timedelta(hours=17), [100, 200])
    delivered(db, tenant, day + timedelta(hours=17), [5000], status="failed")
    delivered(db, tenant, day + timedelta(days=1, hours=2), [7])
    refresh_since(db, day)

    response = tenant.get(
        "/stats",
        params={
            "from": rfc3339(day + timedelta(hours=12)),  # inside the first day: it is included
            "to": rfc3339(day + timedelta(days=2)),
            "granularity": "day",
        },
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["from"] == rfc3339(day)
    first, second = body["data"]
    assert first["start"] == rfc3339(day)
    assert first["events"] == 8
    assert first["attempts"] == {
        "succeeded": 7,
        "failed": 1,
        "gave_up": 0,
        "superseded": 0,
        "expired": 0,
    }
    # Of all seven: 40 and 1000 (the hours' own p50s, 30 and 100, average to 65: wrong).
    assert first["latency_ms"]["p50"] == 40
    assert first["latency_ms"]["p95"] == latency_bucket(db, 1000)
    assert abs(first["latency_ms"]["p95"] - 1000) <= 20
    assert second["start"] == rfc3339(day + timedelta(days=1))
    assert second["latency_ms"] == {"p50": 7, "p95": 7}


def test_hours_in_a_range(db, tenant, day):
    delivered(db, tenant, day + timedelta(hours=9, minutes=30), [10, 20, 30])
    refresh_since(db, day)

    response = tenant.get(
        "/stats",
        params={
            "from": rfc3339(day + timedelta(hours=8, minutes=15)),
            "to": rfc3339(day + timedelta(hours=11)),
        },
    )

    data = response.json()["data"]
    assert [b["start"] for b in data] == [rfc3339(day + timedelta(hours=h)) for h in (8, 9, 10)]
    assert [b["events"] for b in data] == [0, 3, 0]
    assert data[1]["latency_ms"] == {"p50": 20, "p95": 30}


def test_another_applications_stats_are_not_found(tenant, other_tenant):
    response = tenant.api.get(other_tenant.path("/stats"), headers=tenant.headers)
    assert response.status_code == 404


def test_only_the_applications_own_numbers(db, tenant, other_tenant, day):
    delivered(db, other_tenant, day + timedelta(hours=1), [10])
    refresh_since(db, day)
    params = {"from": rfc3339(day), "to": rfc3339(day + timedelta(days=1)), "granularity": "day"}
    assert tenant.get("/stats", params=params).json()["data"][0]["events"] == 0
    assert other_tenant.get("/stats", params=params).json()["data"][0]["events"] == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2025-01-02T00:00:00Z", "to": "2025-01-01T00:00:00Z"}, "from"),
        ({"from": "2025-01-01T00:00:00Z", "to": "2025-01-01T00:00:00Z"}, "from"),
        ({"from": "2025-01-01T00:00:00Z", "to": "2025-03-01T00:00:00Z"}, "to"),
        (
            {"from": "2020-01-01T00:00:00Z", "to": "2025-01-01T00:00:00Z", "granularity": "day"},
            "to",
        ),
        ({"granularity": "week"}, "granularity"),
        ({"from": "yesterday"}, "from"),
    ],
)
def test_invalid_ranges_are_refused(tenant, params, field):
    response = tenant.get("/stats", params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_a_timestamp_without_offset_is_utc(tenant):
    response = tenant.get(
        "/stats", params={"from": "2025-01-01T00:00:00", "to": "2025-01-01T02:00:00"}
    )
    assert response.status_code == 200, response.text
    assert [b["start"] for b in response.json()["data"]] == [
        "2025-01-01T00:00:00Z",
        "2025-01-01T01:00:00Z",
    ]


def test_the_route_is_documented(api):
    document = api.get("/v1/openapi.json").json()
    parameters = document["paths"]["/v1/applications/{app_id}/stats"]["get"]["parameters"]
    assert {p["name"] for p in parameters} >= {"from", "to", "granularity"}
