"""Applications and API keys: the admin token's side of the API."""

from __future__ import annotations

import hashlib

import psycopg

from support import ADMIN, create_tenant


def test_create_get_update_delete_application(api):
    created = api.post("/v1/applications", headers=ADMIN, json={"name": "shop"})
    assert created.status_code == 201
    app = created.json()
    assert app["name"] == "shop" and app["retention_days"] == 30
    assert app["created_at"].endswith("Z")
    assert api.get(f"/v1/applications/{app['id']}", headers=ADMIN).json() == app

    patched = api.patch(
        f"/v1/applications/{app['id']}", headers=ADMIN, json={"name": "store", "retention_days": 7}
    )
    assert patched.status_code == 200
    assert patched.json()["name"] == "store" and patched.json()["retention_days"] == 7

    assert api.delete(f"/v1/applications/{app['id']}", headers=ADMIN).status_code == 204
    gone = api.get(f"/v1/applications/{app['id']}", headers=ADMIN)
    assert gone.status_code == 404
    assert gone.headers["content-type"] == "application/problem+json"


def test_application_ids_are_time_ordered_uuids(api):
    first = api.post("/v1/applications", headers=ADMIN, json={"name": "a"}).json()["id"]
    second = api.post("/v1/applications", headers=ADMIN, json={"name": "b"}).json()["id"]
    assert first[14] == "7" and second > first


def test_application_field_errors_are_422_problems(api):
    response = api.post("/v1/applications", headers=ADMIN, json={"name": "", "retention_days": 0})
    assert response.status_code == 422
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert {"type", "title", "status", "detail", "errors"} <= problem.keys()
    assert {e["field"] for e in problem["errors"]} == {"name", "retention_days"}

    unknown = api.post("/v1/applications", headers=ADMIN, json={"name": "x", "colour": "red"})
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "colour"


def test_malformed_json_is_400(api):
    response = api.post(
        "/v1/applications",
        headers={**ADMIN, "content-type": "application/json"},
        content=b'{"name": ',
    )
    assert response.status_code == 400
    assert response.json()["status"] == 400


def test_missing_and_invalid_tokens_are_401(api):
    assert api.get("/v1/applications").status_code == 401
    wrong = api.get("/v1/applications", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.headers["content-type"] == "application/problem+json"
    assert api.get("/v1/applications", headers={"Authorization": "Basic abc"}).status_code == 401


def test_an_application_key_cannot_manage_applications(api, tenant):
    assert api.get("/v1/applications", headers=tenant.headers).status_code == 403
    assert api.get(tenant.path(), headers=tenant.headers).status_code == 403
    keys = api.post(tenant.path("/api-keys"), headers=tenant.headers, json={"name": "x"})
    assert keys.status_code == 403


def test_lists_paginate_with_cursors(api):
    ids = [
        api.post("/v1/applications", headers=ADMIN, json={"name": f"p{i}"}).json()["id"]
        for i in range(5)
    ]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = api.get("/v1/applications", headers=ADMIN, params=params).json()
        assert len(page["data"]) <= 2
        seen += [a["id"] for a in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None or set(ids) <= set(seen):
            break
    assert set(ids) <= set(seen)
    assert len(seen) == len(set(seen)), "no application appears on two pages"
    assert seen == sorted(seen, reverse=True), "newest first"


def test_list_limit_and_cursor_are_validated(api):
    for limit in (0, 201, "x"):
        response = api.get("/v1/applications", headers=ADMIN, params={"limit": limit})
        assert response.status_code == 422, limit
        assert response.json()["errors"][0]["field"] == "limit"
    bad_cursor = api.get("/v1/applications", headers=ADMIN, params={"cursor": "!!!"})
    assert bad_cursor.status_code == 422
    assert api.get("/v1/applications", headers=ADMIN, params={"limit": 200}).status_code == 200


def test_api_key_is_shown_once_and_stored_hashed(api, tenant, database_url):
    created = api.post(tenant.path("/api-keys"), headers=ADMIN, json={"name": "ci"})
    assert created.status_code == 201
    key = created.json()
    assert key["key"].startswith("hp_") and key["name"] == "ci"
    listed = api.get(tenant.path("/api-keys"), headers=ADMIN).json()["data"]
    assert key["id"] in {k["id"] for k in listed}
    assert all("key" not in k for k in listed)
    with psycopg.connect(database_url) as conn:
        stored = conn.execute(
            "SELECT key_hash FROM api_keys WHERE id = %s", (key["id"],)
        ).fetchone()[0]
        raw_anywhere = conn.execute(
            "SELECT count(*) FROM api_keys WHERE key_prefix = %s OR name = %s",
            (key["key"], key["key"]),
        ).fetchone()[0]
    assert bytes(stored) == hashlib.sha256(key["key"].encode()).digest()
    assert raw_anywhere == 0


def test_a_revoked_key_answers_401_at_once(api, tenant):
    assert tenant.get("/event-types").status_code == 200
    keys = api.get(tenant.path("/api-keys"), headers=ADMIN).json()["data"]
    assert api.delete(tenant.path(f"/api-keys/{keys[0]['id']}"), headers=ADMIN).status_code == 204
    assert tenant.get("/event-types").status_code == 401
    listed = api.get(tenant.path("/api-keys"), headers=ADMIN).json()["data"]
    assert listed[0]["revoked_at"] is not None


def test_keys_of_another_application_are_404(api, tenant, other_tenant):
    other_key = api.get(other_tenant.path("/api-keys"), headers=ADMIN).json()["data"][0]
    response = api.delete(tenant.path(f"/api-keys/{other_key['id']}"), headers=ADMIN)
    assert response.status_code == 404
    assert other_tenant.get("/event-types").status_code == 200


def test_deleting_an_application_revokes_its_keys(api):
    doomed = create_tenant(api, "doomed")
    assert api.delete(doomed.path(), headers=ADMIN).status_code == 204
    assert doomed.get("/event-types").status_code == 401
