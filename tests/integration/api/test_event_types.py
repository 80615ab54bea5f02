"""Event types: names, optional JSON Schemas, deactivation."""

from __future__ import annotations


def test_create_list_and_conflict(tenant):
    created = tenant.post(
        "/event-types",
        {"name": "invoice.paid", "description": "paid", "schema": {"type": "object"}},
    )
    assert created.status_code == 201
    assert created.json()["schema"] == {"type": "object"} and created.json()["active"] is True
    again = tenant.post("/event-types", {"name": "invoice.paid"})
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    names = [t["name"] for t in tenant.get("/event-types").json()["data"]]
    assert names == ["invoice.paid"]


def test_names_are_validated(tenant):
    for bad in ("", "has space", "trailing.", ".leading", "a..b", "x" * 201):
        response = tenant.post("/event-types", {"name": bad})
        assert response.status_code == 422, bad
        assert response.json()["errors"][0]["field"] == "name"


def test_an_invalid_json_schema_is_refused(tenant):
    response = tenant.post("/event-types", {"name": "a.b", "schema": {"type": "nonsense"}})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "schema"
    assert tenant.get("/event-types").json()["data"] == []


def test_event_types_paginate_by_name(tenant):
    for name in ("c.c", "a.a", "b.b"):
        tenant.event_type(name)
    first = tenant.get("/event-types", params={"limit": 2}).json()
    assert [t["name"] for t in first["data"]] == ["a.a", "b.b"]
    second = tenant.get("/event-types", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [t["name"] for t in second["data"]] == ["c.c"] and second["next_cursor"] is None


def test_deleting_deactivates_and_events_of_it_are_refused(tenant):
    tenant.event_type("order.created")
    assert tenant.delete("/event-types/order.created").status_code == 204
    listed = tenant.get("/event-types").json()["data"]
    assert listed[0]["active"] is False
    refused = tenant.post("/events", {"event_type": "order.created", "payload": {}})
    assert refused.status_code == 422
    assert "inactive" in refused.json()["detail"]
    assert tenant.get("/events").json()["data"] == []
    # declaring it again brings it back
    assert tenant.post("/event-types", {"name": "order.created"}).status_code == 201
    assert tenant.post("/events", {"event_type": "order.created", "payload": {}}).status_code == 202


def test_deleting_an_unknown_type_is_404(tenant):
    assert tenant.delete("/event-types/never.declared").status_code == 404


def test_hookpost_names_are_reserved(tenant):
    for name in ("hookpost.circuit.opened", "hookpost.anything", "hookpost.a.b"):
        response = tenant.post("/event-types", {"name": name})
        assert response.status_code == 422, name
        (error,) = response.json()["errors"]
        assert error["field"] == "name" and "reserved" in error["message"]
    assert tenant.get("/event-types").json()["data"] == []
    assert tenant.post("/event-types", {"name": "hookpostal.sent"}).status_code == 201
