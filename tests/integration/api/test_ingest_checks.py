"""An event ingest checks its API key and rate limits in the same database call that stores it:
the answers are those every other route gives (401 for a revoked key on its very next request,
404 for another application's key, 429 with nothing stored and no token spent), whether the
request reaches that call or is refused before it (an invalid body)."""

from __future__ import annotations

import psycopg
import pytest

from support import ADMIN

EVENT = {"event_type": "invoice.paid", "payload": {"n": 1}}
INVALID = {"event_type": "invoice.paid", "payload": {"n": 1}, "priority": "urgent"}


@pytest.fixture
def shop(tenant):
    assert tenant.post("/event-types", json={"name": "invoice.paid"}).status_code == 201
    return tenant


def stored_events(database_url: str, application_id: str) -> int:
    with psycopg.connect(database_url) as conn:
        query = "SELECT count(*) FROM events WHERE application_id = %s"
        return conn.execute(query, (application_id,)).fetchone()[0]


def revoke_keys(api, tenant) -> None:
    for key in api.get(tenant.path("/api-keys"), headers=ADMIN).json()["data"]:
        response = api.delete(tenant.path(f"/api-keys/{key['id']}"), headers=ADMIN)
        assert response.status_code == 204


@pytest.mark.parametrize("path", ["/events", "/events/batch"])
def test_a_revoked_key_cannot_ingest_on_its_next_request(api, shop, database_url, path):
    body = EVENT if path == "/events" else {"events": [EVENT]}
    assert shop.post(path, json=body).status_code == 202
    revoke_keys(api, shop)

    refused = shop.post(path, json=body)

    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert stored_events(database_url, shop.id) == 1


def test_a_revoked_key_with_an_invalid_body_is_401_not_422(api, shop):
    revoke_keys(api, shop)
    assert shop.post("/events", json=INVALID).status_code == 401
    assert shop.post("/events", json={"event_type": "unknown.type", "payload": {}}).status_code == (
        401
    )


def test_another_applications_key_cannot_ingest_into_it(shop, other_tenant, database_url):
    response = other_tenant.api.post(shop.path("/events"), headers=other_tenant.headers, json=EVENT)
    assert response.status_code == 404
    assert stored_events(database_url, shop.id) == 0


def test_the_admin_token_cannot_ingest(api, shop):
    assert api.post(shop.path("/events"), headers=ADMIN, json=EVENT).status_code == 403


def test_an_empty_key_bucket_refuses_ingest_and_stores_nothing(env, shop, database_url):
    # The bucket holds 2 tokens and refills one in 1000 s: the third request of this key is
    # refused, and a refused request spends nothing, so the fourth is refused the same way.
    env(HOOKPOST_LIMITS="on", HOOKPOST_LIMIT_KEY_BURST="2", HOOKPOST_LIMIT_KEY_PER_S="0.001")
    outcomes = [shop.post("/events", json=EVENT) for _ in range(4)]

    assert [r.status_code for r in outcomes] == [202, 202, 429, 429]
    assert outcomes[2].json()["detail"].startswith("rate limit exceeded (key)")
    assert int(outcomes[2].headers["retry-after"]) >= 900
    assert stored_events(database_url, shop.id) == 2


def test_an_invalid_ingest_is_throttled_first(env, shop):
    env(HOOKPOST_LIMITS="on", HOOKPOST_LIMIT_KEY_BURST="1", HOOKPOST_LIMIT_KEY_PER_S="0.001")
    assert shop.post("/events", json=INVALID).status_code == 422
    assert shop.post("/events", json=INVALID).status_code == 429
