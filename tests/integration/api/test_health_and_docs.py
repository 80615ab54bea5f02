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
