"""`recover` sends again what a subscription missed in a window; `test` sends it one signed
example; the event list filters by time and labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest


def _end(database_url: str, attempt_ids: list[str], status: str, finished_at: datetime) -> None:
    """Attempts ended as a deliver loop ends them (the delivery tests cover how it gets there)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE attempts SET status = %s::attempt_status, finished_at = %s, error = 'down'"
            " WHERE id = ANY(%s::uuid[])",
            (status, finished_at, attempt_ids),
        )


def _attempts(tenant, sub: dict) -> list[dict]:
    return tenant.get("/attempts", params={"subscription_id": sub["id"], "limit": 200}).json()[
        "data"
    ]


def test_recover_resends_what_ended_badly_in_the_window(tenant, database_url):
    tenant.event_type()
    sub = tenant.subscription()
    events = [tenant.send(payload={"n": n}) for n in range(5)]
    first = {a["event_id"]: a["id"] for a in _attempts(tenant, sub)}
    now = datetime.now(UTC)
    ids = [first[e["id"]] for e in events]
    _end(database_url, ids[:1], "gave_up", now - timedelta(hours=3))  # before the window
    _end(database_url, ids[1:2], "gave_up", now - timedelta(minutes=30))
    _end(database_url, ids[2:3], "expired", now - timedelta(minutes=20))
    _end(database_url, ids[3:4], "failed", now - timedelta(minutes=10))
    _end(database_url, ids[4:5], "succeeded", now - timedelta(minutes=5))

    since = (now - timedelta(hours=1)).isoformat()
    response = tenant.post(f"/subscriptions/{sub['id']}/recover", {"since": since})
    assert response.status_code == 202, response.text
    assert response.json() == {"attempts_created": 3}
    new = [a for a in _attempts(tenant, sub) if a["id"] not in ids]
    assert {a["event_id"] for a in new} == {e["id"] for e in events[1:4]}
    assert all(a["status"] == "pending" and a["try_number"] == 2 for a in new)

    # their last attempts are now pending: recovering again creates nothing
    again = tenant.post(f"/subscriptions/{sub['id']}/recover", {"since": since})
    assert again.json() == {"attempts_created": 0}


def test_recover_honours_until(tenant, database_url):
    tenant.event_type()
    sub = tenant.subscription()
    tenant.send()
    (attempt,) = _attempts(tenant, sub)
    now = datetime.now(UTC)
    _end(database_url, [attempt["id"]], "gave_up", now - timedelta(minutes=10))
    window = {
        "since": (now - timedelta(hours=1)).isoformat(),
        "until": (now - timedelta(minutes=20)).isoformat(),
    }
    response = tenant.post(f"/subscriptions/{sub['id']}/recover", window)
    assert response.json() == {"attempts_created": 0}


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "since"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2030-01-01T00:00:00Z", "until": "2029-01-01T00:00:00Z"}, "since"),
        ({"since": "2020-01-01T00:00:00Z", "extra": 1}, "extra"),
    ],
)
def test_bad_recover_is_422(tenant, body, field):
    sub = tenant.subscription()
    response = tenant.post(f"/subscriptions/{sub['id']}/recover", body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field


def test_recover_and_test_of_a_missing_subscription_are_404(tenant, other_tenant):
    sub = tenant.subscription()
    assert other_tenant.post(f"/subscriptions/{sub['id']}/test").status_code == 404
    assert (
        other_tenant.post(
            f"/subscriptions/{sub['id']}/recover", {"since": "2020-01-01T00:00:00Z"}
        ).status_code
        == 404
    )


def test_a_test_delivery_goes_to_that_subscription_only(tenant):
    tenant.event_type()
    sub = tenant.subscription()
    other = tenant.subscription()
    response = tenant.post(f"/subscriptions/{sub['id']}/test")
    assert response.status_code == 202, response.text
    attempt = tenant.get(f"/attempts/{response.json()['attempt_id']}").json()
    assert attempt["subscription_id"] == sub["id"] and attempt["status"] == "pending"
    event = tenant.get(f"/events/{attempt['event_id']}").json()
    assert event["event_type"] == "hookpost.test"
    assert event["payload"]["subscription_id"] == sub["id"]
    assert [a["id"] for a in event["attempts"]] == [attempt["id"]]
    assert _attempts(tenant, other) == []


def test_a_test_delivery_of_a_declared_type_checks_its_payload(tenant, database_url):
    schema = {"type": "object", "required": ["amount"]}
    tenant.event_type("invoice.paid", schema=schema)
    sub = tenant.subscription(event_types=["other.type"])
    ok = tenant.post(
        f"/subscriptions/{sub['id']}/test", {"event_type": "invoice.paid", "payload": {"amount": 3}}
    )
    assert ok.status_code == 202, ok.text
    event = tenant.get(f"/attempts/{ok.json()['attempt_id']}").json()["event_id"]
    assert tenant.get(f"/events/{event}").json()["payload"] == {"amount": 3}
    with psycopg.connect(database_url) as conn:
        before = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    for body, field in [
        ({"event_type": "invoice.paid", "payload": {}}, "payload"),
        ({"event_type": "not.declared"}, "event_type"),
        ({"event_type": "bad type!"}, "event_type"),
        ({"other": 1}, "other"),
    ]:
        response = tenant.post(f"/subscriptions/{sub['id']}/test", body)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == field
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == before


def test_events_filter_by_time_and_labels(tenant):
    tenant.event_type()
    a = tenant.send(labels={"customer": "acme", "region": "eu"})
    b = tenant.send(labels={"customer": "acme", "region": "us"})
    c = tenant.send(labels={"customer": "globex"})

    def ids(**params) -> list[str]:
        response = tenant.get("/events", params=params)
        assert response.status_code == 200, response.text
        return [e["id"] for e in response.json()["data"]]

    assert ids(**{"label.customer": "acme"}) == [b["id"], a["id"]]
    assert ids(**{"label.customer": "acme", "label.region": "eu"}) == [a["id"]]
    assert ids(**{"label.customer": "nobody"}) == []
    created = {e["id"]: e["created_at"] for e in tenant.get("/events").json()["data"]}
    assert ids(since=created[b["id"]]) == [c["id"], b["id"]]
    assert ids(until=created[b["id"]]) == [a["id"]]
    assert ids(since="2000-01-01T00:00:00Z", until="2001-01-01T00:00:00Z") == []
    bad = tenant.get("/events", params={"since": "not a time"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "since"
