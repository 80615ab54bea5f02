"""Ingest: one event or a batch, all or nothing, idempotent, fanned out to matching subs."""

from __future__ import annotations

import psycopg


def count(database_url: str, table: str, application_id: str) -> int:
    with psycopg.connect(database_url) as conn:
        query = f"SELECT count(*) FROM {table} WHERE application_id = %s"
        return conn.execute(query, (application_id,)).fetchone()[0]


def test_an_event_is_accepted_with_one_attempt_per_matching_subscription(tenant):
    tenant.event_type("invoice.paid")
    tenant.event_type("order.created")
    tenant.subscription(event_types=["invoice.paid"])
    tenant.subscription(event_types=["*"])
    tenant.subscription(event_types=["order.created"])
    tenant.subscription(event_types=["invoice.paid"], enabled=False)

    response = tenant.post("/events", {"event_type": "invoice.paid", "payload": {"amount": 5}})
    assert response.status_code == 202
    accepted = response.json()
    assert accepted["event_type"] == "invoice.paid" and accepted["attempts_created"] == 2
    assert accepted["event_id"]  # defaults to something unique when not given
    assert len(tenant.get("/attempts").json()["data"]) == 2


def test_labels_must_all_match(tenant):
    tenant.event_type()
    eu = tenant.subscription(labels={"region": "eu"})
    tenant.subscription(labels={"region": "eu", "tier": "gold"})
    tenant.subscription(labels={"region": "us"})
    accepted = tenant.send(labels={"region": "eu", "tier": "silver"})
    assert accepted["attempts_created"] == 1
    (attempt,) = tenant.get("/attempts").json()["data"]
    assert attempt["subscription_id"] == eu["id"]


def test_the_same_event_id_again_answers_200_with_the_first_result(tenant, database_url):
    tenant.event_type()
    tenant.subscription()
    first = tenant.post("/events", {"event_type": "invoice.paid", "payload": {}, "event_id": "e-1"})
    tenant.subscription()  # would match a second time, but nothing new is created
    again = tenant.post("/events", {"event_type": "invoice.paid", "payload": {}, "event_id": "e-1"})
    assert first.status_code == 202 and again.status_code == 200
    assert again.json() == {**first.json(), "duplicate": True}
    assert count(database_url, "events", tenant.id) == 1
    assert count(database_url, "attempts", tenant.id) == 1


def test_event_ids_are_scoped_per_application(tenant, other_tenant):
    for t in (tenant, other_tenant):
        t.event_type()
        assert (
            t.post(
                "/events", {"event_type": "invoice.paid", "payload": {}, "event_id": "same"}
            ).status_code
            == 202
        )


def test_unknown_type_and_schema_violations_are_422_and_store_nothing(tenant, database_url):
    tenant.event_type(
        "invoice.paid",
        schema={
            "type": "object",
            "required": ["amount"],
            "properties": {"amount": {"type": "integer"}},
        },
    )
    tenant.subscription()
    unknown = tenant.post("/events", {"event_type": "nope.nope", "payload": {}})
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "event_type"
    bad = tenant.post("/events", {"event_type": "invoice.paid", "payload": {"amount": "x"}})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "payload.amount"
    missing = tenant.post("/events", {"event_type": "invoice.paid"})
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "payload"
    assert count(database_url, "events", tenant.id) == 0
    assert count(database_url, "attempts", tenant.id) == 0
    ok = tenant.post("/events", {"event_type": "invoice.paid", "payload": {"amount": 3}})
    assert ok.status_code == 202


def test_occurred_at_is_kept_in_utc(tenant):
    tenant.event_type()
    sent = tenant.send(occurred_at="2026-01-02T03:04:05+02:00")
    event = tenant.get(f"/events/{sent['id']}").json()
    assert event["occurred_at"] == "2026-01-02T01:04:05Z"
    bad = tenant.post("/events", {"event_type": "invoice.paid", "payload": {}, "occurred_at": "x"})
    assert bad.status_code == 422


def test_a_body_over_the_limit_is_413(tenant, env, database_url):
    env(HOOKPOST_MAX_EVENT_BYTES="1024")
    tenant.event_type()
    response = tenant.post("/events", {"event_type": "invoice.paid", "payload": {"x": "a" * 2000}})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    batch = tenant.post(
        "/events/batch",
        {"events": [{"event_type": "invoice.paid", "payload": {"x": "a" * 2000}}]},
    )
    assert batch.status_code == 413 and "events[0]" in batch.json()["detail"]
    assert count(database_url, "events", tenant.id) == 0


def test_a_batch_is_accepted_in_order(tenant, database_url):
    tenant.event_type("a.one")
    tenant.event_type("b.two")
    tenant.subscription(event_types=["a.one"])
    events = [
        {"event_type": "a.one" if i % 2 == 0 else "b.two", "payload": {"i": i}, "event_id": f"k{i}"}
        for i in range(10)
    ]
    response = tenant.post("/events/batch", {"events": events})
    assert response.status_code == 202
    results = response.json()["data"]
    assert [r["event_id"] for r in results] == [f"k{i}" for i in range(10)]
    assert [r["attempts_created"] for r in results] == [1, 0] * 5
    assert count(database_url, "attempts", tenant.id) == 5


def test_a_batch_with_one_bad_event_stores_nothing_and_names_it(tenant, database_url):
    tenant.event_type(schema={"type": "object", "required": ["amount"]})
    tenant.subscription()
    events = [{"event_type": "invoice.paid", "payload": {"amount": i}} for i in range(5)]
    events[3] = {"event_type": "invoice.paid", "payload": {}}
    response = tenant.post("/events/batch", {"events": events})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "events[3].payload"
    assert "events[3]" in response.json()["detail"]
    shape = tenant.post("/events/batch", {"events": [{"event_type": "invoice.paid"}]})
    assert shape.status_code == 422 and shape.json()["errors"][0]["field"] == "events[0].payload"
    assert count(database_url, "events", tenant.id) == 0


def test_a_batch_holds_at_most_500_events(tenant):
    tenant.event_type()
    events = [{"event_type": "invoice.paid", "payload": {}}] * 501
    assert tenant.post("/events/batch", {"events": events}).status_code == 422
    assert tenant.post("/events/batch", {"events": []}).status_code == 422
    assert tenant.post("/events/batch", {"events": events[:500]}).status_code == 202


def test_batch_duplicates_answer_with_the_first_result(tenant, database_url):
    tenant.event_type()
    tenant.subscription()
    earlier = tenant.send(event_id="old")
    events = [
        {"event_type": "invoice.paid", "payload": {}, "event_id": key}
        for key in ("new", "old", "new")
    ]
    results = tenant.post("/events/batch", {"events": events}).json()["data"]
    assert [r["duplicate"] for r in results] == [False, True, True]
    assert results[1]["id"] == earlier["id"] and results[0]["id"] == results[2]["id"]
    assert count(database_url, "events", tenant.id) == 2
    assert count(database_url, "attempts", tenant.id) == 2


def test_list_and_get_events(tenant):
    tenant.event_type("a.one")
    tenant.event_type("b.two")
    sub = tenant.subscription()
    ids = [tenant.send("a.one" if i < 3 else "b.two", {"i": i})["id"] for i in range(5)]
    listed = tenant.get("/events", params={"event_type": "a.one"}).json()
    assert [e["id"] for e in listed["data"]] == ids[:3][::-1]
    page = tenant.get("/events", params={"limit": 2}).json()
    rest = tenant.get("/events", params={"limit": 10, "cursor": page["next_cursor"]}).json()
    assert [e["id"] for e in page["data"] + rest["data"]] == ids[::-1]
    event = tenant.get(f"/events/{ids[0]}").json()
    assert event["payload"] == {"i": 0} and event["labels"] == {}
    assert [a["subscription_id"] for a in event["attempts"]] == [sub["id"]]
    assert tenant.get("/events/01a20000-0000-7000-8000-000000000000").status_code == 404


def test_replay_creates_new_attempts(tenant):
    tenant.event_type()
    first = tenant.subscription()
    second = tenant.subscription()
    sent = tenant.send()
    everyone = tenant.post(f"/events/{sent['id']}/replay")
    assert everyone.status_code == 202 and everyone.json()["attempts_created"] == 2
    chosen = tenant.post(f"/events/{sent['id']}/replay", {"subscription_ids": [second["id"]]})
    assert chosen.status_code == 202 and chosen.json()["attempts_created"] == 1
    attempts = tenant.get("/attempts", params={"subscription_id": second["id"]}).json()["data"]
    assert sorted(a["trigger"] for a in attempts) == ["event", "replay", "replay"]
    unknown = tenant.post(
        f"/events/{sent['id']}/replay",
        {"subscription_ids": ["01a20000-0000-7000-8000-000000000000"]},
    )
    assert unknown.status_code == 422
    tenant.patch(f"/subscriptions/{first['id']}", {"enabled": False})
    assert tenant.post(f"/events/{sent['id']}/replay").json()["attempts_created"] == 1


def test_a_schema_changed_elsewhere_applies_to_the_next_event(tenant, database_url):
    tenant.event_type(schema={"type": "object"})
    assert tenant.post("/events", {"event_type": "invoice.paid", "payload": {}}).status_code == 202
    # another copy of the function (or an operator) changes the type behind this one's back
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE event_types SET schema = %s, updated_at = now()"
            " WHERE application_id = %s AND name = 'invoice.paid'",
            ('{"type": "object", "required": ["amount"]}', tenant.id),
        )
    refused = tenant.post("/events", {"event_type": "invoice.paid", "payload": {}})
    assert refused.status_code == 422
    assert count(database_url, "events", tenant.id) == 1
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE event_types SET active = false, updated_at = now()"
            " WHERE application_id = %s AND name = 'invoice.paid'",
            (tenant.id,),
        )
    inactive = tenant.post("/events", {"event_type": "invoice.paid", "payload": {"amount": 1}})
    assert inactive.status_code == 422 and "inactive" in inactive.json()["detail"]
