"""Attempts: filters, one attempt with its receiver's answer, manual retries."""

from __future__ import annotations

import psycopg


def test_attempt_filters(tenant):
    tenant.event_type()
    a = tenant.subscription()
    b = tenant.subscription()
    keyed = tenant.send(event_id="order-7")
    other = tenant.send()
    by_sub = tenant.get("/attempts", params={"subscription_id": a["id"]}).json()["data"]
    assert {x["subscription_id"] for x in by_sub} == {a["id"]} and len(by_sub) == 2
    by_event = tenant.get("/attempts", params={"event_id": keyed["id"]}).json()["data"]
    assert {x["event_id"] for x in by_event} == {keyed["id"]} and len(by_event) == 2
    by_key = tenant.get("/attempts", params={"event_id": "order-7"}).json()["data"]
    assert by_key == by_event
    pending = tenant.get("/attempts", params={"status": "pending"}).json()["data"]
    assert len(pending) == 4
    assert tenant.get("/attempts", params={"status": "succeeded"}).json()["data"] == []
    assert tenant.get("/attempts", params={"status": "bogus"}).status_code == 422
    both = tenant.get(
        "/attempts", params={"event_id": other["id"], "subscription_id": b["id"]}
    ).json()["data"]
    assert len(both) == 1


def test_an_attempt_shows_the_stored_response(tenant, database_url):
    tenant.event_type()
    tenant.subscription()
    tenant.send()
    (attempt,) = tenant.get("/attempts").json()["data"]
    assert attempt["response"] is None and attempt["error"] is None
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE attempts SET status = 'failed', response_status = 500,"
            " response_headers = '{\"x\": \"y\"}', response_body = 'boom', elapsed_ms = 12"
            " WHERE id = %s",
            (attempt["id"],),
        )
    shown = tenant.get(f"/attempts/{attempt['id']}").json()
    assert shown["status"] == "failed"
    assert shown["response"] == {
        "status_code": 500,
        "headers": {"x": "y"},
        "body": "boom",
        "elapsed_ms": 12,
    }


def test_retry_creates_a_new_attempt_due_now(tenant):
    tenant.event_type()
    tenant.subscription()
    tenant.send()
    (attempt,) = tenant.get("/attempts").json()["data"]
    response = tenant.post(f"/attempts/{attempt['id']}/retry")
    assert response.status_code == 202
    retry = response.json()
    assert retry["id"] != attempt["id"] and retry["status"] == "pending"
    assert retry["trigger"] == "manual" and retry["try_number"] == 2
    assert retry["event_id"] == attempt["event_id"]
    assert tenant.post("/attempts/01a20000-0000-7000-8000-000000000000/retry").status_code == 404


def test_expired_is_a_status_and_a_filter(tenant, database_url):
    tenant.event_type()
    tenant.subscription()
    tenant.send()
    tenant.send()
    first, _ = tenant.get("/attempts").json()["data"]
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE attempts SET status = 'expired', finished_at = now() WHERE id = %s",
            (first["id"],),
        )
    expired = tenant.get("/attempts", params={"status": "expired"})
    assert expired.status_code == 200
    assert [a["id"] for a in expired.json()["data"]] == [first["id"]]
    assert tenant.get(f"/attempts/{first['id']}").json()["status"] == "expired"
    assert len(tenant.get("/attempts", params={"status": "pending"}).json()["data"]) == 1
