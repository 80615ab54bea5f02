"""API keys that expire: `ttl_s` at creation, `expires_at` answered and listed, a bad `ttl_s`
refused with nothing made, and a key past its `expires_at` answering 401 on its next request,
on an ingest (checked inside hookpost_ingest) as on any other route (the credentials lookup)."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg
import pytest

from support import ADMIN, Tenant

EVENT = {"event_type": "invoice.paid", "payload": {"n": 1}}
THIRTY_DAYS_S = 30 * 24 * 3600


def parse(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def key_count(database_url: str, application_id: str) -> int:
    with psycopg.connect(database_url) as conn:
        query = "SELECT count(*) FROM api_keys WHERE application_id = %s"
        return conn.execute(query, (application_id,)).fetchone()[0]


def stored_events(database_url: str, application_id: str) -> int:
    with psycopg.connect(database_url) as conn:
        query = "SELECT count(*) FROM events WHERE application_id = %s"
        return conn.execute(query, (application_id,)).fetchone()[0]


def expire(database_url: str, key_id: str) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = %s", (key_id,)
        )


def listed(api, tenant: Tenant) -> dict[str, dict]:
    answer = api.get(tenant.path("/api-keys"), headers=ADMIN)
    assert answer.status_code == 200
    return {key["id"]: key for key in answer.json()["data"]}


@pytest.fixture
def shop(tenant: Tenant) -> Tenant:
    assert tenant.post("/event-types", json={"name": "invoice.paid"}).status_code == 201
    return tenant


def test_a_key_without_ttl_never_expires(api, tenant):
    created = api.post(tenant.path("/api-keys"), headers=ADMIN, json={"name": "ci"})
    assert created.status_code == 201
    key = created.json()
    assert set(key) == {"id", "name", "key", "created_at", "expires_at"}
    assert key["expires_at"] is None
    assert listed(api, tenant)[key["id"]]["expires_at"] is None
    assert listed(api, tenant)[key["id"]]["revoked_at"] is None


def test_a_key_with_ttl_answers_and_lists_its_expiry_and_works_until_then(api, shop):
    created = api.post(
        shop.path("/api-keys"), headers=ADMIN, json={"name": "console", "ttl_s": 43_200}
    )
    assert created.status_code == 201, created.text
    key = created.json()
    assert parse(key["expires_at"]) - parse(key["created_at"]) == timedelta(hours=12)
    assert listed(api, shop)[key["id"]]["expires_at"] == key["expires_at"]

    as_key = {"Authorization": f"Bearer {key['key']}"}
    assert api.get(shop.path("/event-types"), headers=as_key).status_code == 200
    assert api.post(shop.path("/events"), headers=as_key, json=EVENT).status_code == 202


@pytest.mark.parametrize("ttl_s", [60, THIRTY_DAYS_S])
def test_the_bounds_of_ttl_are_accepted(api, tenant, ttl_s):
    created = api.post(tenant.path("/api-keys"), headers=ADMIN, json={"name": "b", "ttl_s": ttl_s})
    assert created.status_code == 201, created.text
    key = created.json()
    assert parse(key["expires_at"]) - parse(key["created_at"]) == timedelta(seconds=ttl_s)


@pytest.mark.parametrize(
    "ttl_s", [59, 0, -60, THIRTY_DAYS_S + 1, "3600", 3600.0, 3600.5, True, [3600], {"s": 1}]
)
def test_a_bad_ttl_is_a_problem_and_makes_no_key(api, tenant, database_url, ttl_s):
    before = key_count(database_url, tenant.id)

    refused = api.post(tenant.path("/api-keys"), headers=ADMIN, json={"name": "x", "ttl_s": ttl_s})

    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    problem = refused.json()
    assert problem["status"] == 422
    assert [error["field"] for error in problem["errors"]] == ["ttl_s"]
    assert key_count(database_url, tenant.id) == before


def test_a_null_ttl_is_a_key_that_never_expires(api, tenant):
    created = api.post(tenant.path("/api-keys"), headers=ADMIN, json={"name": "n", "ttl_s": None})
    assert created.status_code == 201
    assert created.json()["expires_at"] is None


def make_expired_key(api, tenant: Tenant, database_url: str) -> dict[str, str]:
    created = api.post(tenant.path("/api-keys"), headers=ADMIN, json={"name": "t", "ttl_s": 60})
    assert created.status_code == 201
    key = created.json()
    as_key = {"Authorization": f"Bearer {key['key']}"}
    assert api.get(tenant.path("/event-types"), headers=as_key).status_code == 200
    expire(database_url, key["id"])
    return as_key


@pytest.mark.parametrize("path", ["/events", "/events/batch"])
def test_an_expired_key_cannot_ingest_on_its_next_request(api, shop, database_url, path):
    as_key = make_expired_key(api, shop, database_url)
    body = EVENT if path == "/events" else {"events": [EVENT]}

    refused = api.post(shop.path(path), headers=as_key, json=body)

    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert refused.headers["content-type"].startswith("application/problem+json")
    # An invalid body is refused for the key first, as for a revoked one.
    invalid = {"event_type": "invoice.paid", "payload": {}, "priority": "urgent"}
    assert api.post(shop.path("/events"), headers=as_key, json=invalid).status_code == 401
    assert stored_events(database_url, shop.id) == 0
    # The application's other key is untouched.
    assert shop.post(path, json=body).status_code == 202


def test_an_expired_key_is_401_on_every_other_route(api, shop, database_url):
    as_key = make_expired_key(api, shop, database_url)

    for method, path in [
        ("GET", "/event-types"),
        ("GET", "/subscriptions"),
        ("GET", "/events"),
        ("POST", "/portal-sessions"),
    ]:
        body = {"labels": {"customer": "c"}} if method == "POST" else None
        refused = api.request(method, shop.path(path), headers=as_key, json=body)
        assert refused.status_code == 401, (method, path, refused.text)
        assert refused.headers["www-authenticate"].startswith("Bearer")

    assert shop.get("/event-types").status_code == 200


def test_an_expired_key_is_still_listed_and_can_be_revoked(api, tenant, database_url):
    created = api.post(tenant.path("/api-keys"), headers=ADMIN, json={"name": "r", "ttl_s": 60})
    key_id = created.json()["id"]
    expire(database_url, key_id)

    shown = listed(api, tenant)[key_id]
    assert parse(shown["expires_at"]) < parse(shown["created_at"]) + timedelta(seconds=60)
    assert api.delete(tenant.path(f"/api-keys/{key_id}"), headers=ADMIN).status_code == 204
    assert listed(api, tenant)[key_id]["revoked_at"] is not None
