"""Public routes: health, the OpenAPI document and its page, and what unknown routes answer."""

from __future__ import annotations

import pytest

from support import ADMIN


def test_health_reports_the_database(api):
    response = api.get("/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


@pytest.fixture
def database_down(env, database_url):
    from hookpost.db.pool import close_pool

    close_pool()
    env(
        DATABASE_URL="postgresql://nobody@/none?host=/nonexistent-socket-dir",
        HOOKPOST_DB_CONNECT_TIMEOUT_S="1",
    )
    yield
    close_pool()


def test_without_a_database_health_is_503_and_routes_answer_503_problems(api, database_down):
    health = api.get("/v1/health")
    assert health.status_code == 503
    assert health.json()["database"] == "unavailable"
    listed = api.get("/v1/applications", headers=ADMIN)
    assert listed.status_code == 503
    assert listed.headers["content-type"] == "application/problem+json"
    assert int(listed.headers["retry-after"]) > 0


def test_openapi_document_lists_every_route(api):
    response = api.get("/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    expected = {
        "/v1/health": {"get"},
        "/v1/applications": {"get", "post"},
        "/v1/applications/{app_id}": {"get", "patch", "delete"},
        "/v1/applications/{app_id}/api-keys": {"get", "post"},
        "/v1/applications/{app_id}/api-keys/{key_id}": {"delete"},
        "/v1/applications/{app_id}/event-types": {"get", "post"},
        "/v1/applications/{app_id}/event-types/{name}": {"delete"},
        "/v1/applications/{app_id}/subscriptions": {"get", "post"},
        "/v1/applications/{app_id}/subscriptions/{sub_id}": {"get", "patch", "delete"},
        "/v1/applications/{app_id}/subscriptions/{sub_id}/rotate-secret": {"post"},
        "/v1/applications/{app_id}/events": {"get", "post"},
        "/v1/applications/{app_id}/events/batch": {"post"},
        "/v1/applications/{app_id}/events/{event_id}": {"get"},
        "/v1/applications/{app_id}/events/{event_id}/replay": {"post"},
        "/v1/applications/{app_id}/attempts": {"get"},
        "/v1/applications/{app_id}/attempts/{attempt_id}": {"get"},
        "/v1/applications/{app_id}/attempts/{attempt_id}/retry": {"post"},
    }
    for path, methods in expected.items():
        assert methods <= set(paths.get(path, {})), path


def test_docs_page_is_served(api):
    response = api.get("/v1/docs")
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    assert "swagger" in response.text.lower()


def test_unknown_routes_are_404_problems(api):
    response = api.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_a_known_path_with_another_method_is_405_naming_the_allowed_ones(api, tenant):
    response = api.put(f"/v1/applications/{tenant.id}", headers=ADMIN, json={"name": "x"})
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, PATCH"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 405
    health = api.post("/v1/health")
    assert (health.status_code, health.headers["allow"]) == (405, "GET")
    retry = tenant.get("/attempts/01a20000-0000-7000-8000-000000000000/retry")
    assert (retry.status_code, retry.headers["allow"]) == (405, "POST")
    # Credentials still decide first.
    assert api.put(f"/v1/applications/{tenant.id}").status_code == 401


def test_every_json_answer_ends_with_a_newline(api, tenant, env):
    env(HOOKPOST_MAX_EVENT_BYTES="100")
    answers = [
        tenant.post("/events", {"event_type": "nope", "payload": "x" * 100}),
        api.get("/v1/health"),
        api.get("/v1/openapi.json"),
        tenant.get("/events"),
        tenant.post("/events", {"event_type": "nope", "payload": {}}),
        api.get("/v1/nothing-here"),
        api.get("/v1/applications"),
    ]
    assert [answer.status_code for answer in answers] == [413, 200, 200, 200, 422, 404, 401]
    for answer in answers:
        assert "json" in answer.headers["content-type"], answer.request.url
        assert answer.text.endswith("}\n") and not answer.text.endswith("\n\n"), answer.text
        answer.json()
