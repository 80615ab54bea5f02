"""Tenants see only their own data: another application's ids read exactly as missing ones."""

from __future__ import annotations

import uuid

import pytest

MISSING = str(uuid.uuid4())


@pytest.fixture
def populated(tenant):
    tenant.event_type()
    subscription = tenant.subscription()
    event = tenant.send()
    attempt = tenant.get("/attempts").json()["data"][0]
    return {"sub": subscription["id"], "event": event["id"], "attempt": attempt["id"]}


def routes(ids: dict[str, str]) -> list[tuple[str, str, object]]:
    return [
        ("GET", "/event-types", None),
        ("POST", "/event-types", {"name": "x.y"}),
        ("DELETE", "/event-types/invoice.paid", None),
        ("GET", "/subscriptions", None),
        ("POST", "/subscriptions", {"url": "http://127.0.0.1:9/x", "event_types": ["*"]}),
        ("GET", f"/subscriptions/{ids['sub']}", None),
        ("PATCH", f"/subscriptions/{ids['sub']}", {"enabled": False}),
        ("POST", f"/subscriptions/{ids['sub']}/rotate-secret", None),
        ("DELETE", f"/subscriptions/{ids['sub']}", None),
        ("GET", "/events", None),
        ("POST", "/events", {"event_type": "invoice.paid", "payload": {}}),
        ("POST", "/events/batch", {"events": [{"event_type": "invoice.paid", "payload": {}}]}),
        ("GET", f"/events/{ids['event']}", None),
        ("POST", f"/events/{ids['event']}/replay", None),
        ("GET", "/attempts", None),
        ("GET", f"/attempts/{ids['attempt']}", None),
        ("POST", f"/attempts/{ids['attempt']}/retry", None),
    ]


def test_another_applications_routes_answer_404(api, tenant, other_tenant, populated):
    for method, suffix, body in routes(populated):
        response = api.request(method, tenant.path(suffix), headers=other_tenant.headers, json=body)
        assert response.status_code == 404, (method, suffix, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    # and nothing changed for the owner
    assert tenant.get(f"/subscriptions/{populated['sub']}").json()["enabled"] is True
    assert len(tenant.get("/attempts").json()["data"]) == 1


def test_a_missing_application_reads_like_a_foreign_one(api, other_tenant):
    foreign = api.get(f"/v1/applications/{MISSING}/events", headers=other_tenant.headers)
    malformed = api.get("/v1/applications/not-a-uuid/events", headers=other_tenant.headers)
    assert foreign.status_code == malformed.status_code == 404
    assert foreign.json()["detail"] == malformed.json()["detail"]


def test_own_ids_of_other_tenants_resources_are_404(tenant, other_tenant, populated):
    # other_tenant asks for tenant's resources under its own application path
    assert other_tenant.get(f"/subscriptions/{populated['sub']}").status_code == 404
    assert other_tenant.get(f"/events/{populated['event']}").status_code == 404
    assert other_tenant.get(f"/attempts/{populated['attempt']}").status_code == 404
    assert other_tenant.post(f"/attempts/{populated['attempt']}/retry").status_code == 404
    assert other_tenant.post(f"/events/{populated['event']}/replay").status_code == 404
    assert other_tenant.get("/attempts", params={"event_id": populated["event"]}).json() == {
        "data": [],
        "next_cursor": None,
    }


def test_the_admin_token_is_not_an_application_key(api, tenant):
    from support import ADMIN

    assert api.get(tenant.path("/events"), headers=ADMIN).status_code == 403


def test_bad_input_from_a_stranger_is_still_404_not_422(api, tenant, other_tenant):
    response = api.post(tenant.path("/events"), headers=other_tenant.headers, json={"bad": 1})
    assert response.status_code == 404
    unauthenticated = api.post(tenant.path("/events"), json={"bad": 1})
    assert unauthenticated.status_code == 401
