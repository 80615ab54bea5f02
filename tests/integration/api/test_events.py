"""Ingest: one event or a batch, all or nothing, idempotent, fanned out to matching subs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import psycopg
from psycopg.rows import dict_row


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


def test_each_event_of_a_batch_counts_its_own_attempts(tenant, database_url):
    tenant.event_type("a.one")
    tenant.event_type("b.two")
    tenant.subscription(event_types=["a.one"])
    tenant.subscription(event_types=["*"], labels={"region": "eu"})
    events = [
        {"event_type": "a.one" if i % 2 == 0 else "b.two", "payload": {"i": i}}
        | ({"labels": {"region": "eu"}} if i % 3 == 0 else {})
        for i in range(12)
    ]
    results = tenant.post("/events/batch", {"events": events}).json()["data"]
    expected = [(i % 2 == 0) + (i % 3 == 0) for i in range(12)]
    assert [r["attempts_created"] for r in results] == expected
    stored = [tenant.get(f"/events/{r['id']}").json()["attempts_created"] for r in results]
    assert stored == expected
    assert count(database_url, "attempts", tenant.id) == sum(expected)


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


def test_one_event_is_found_by_its_id_or_by_its_event_id(tenant, other_tenant):
    tenant.event_type()
    sub = tenant.subscription()
    keyed = tenant.send(event_id="order-7")
    by_id = tenant.get(f"/events/{keyed['id']}")
    by_key = tenant.get("/events/order-7")
    assert by_id.status_code == by_key.status_code == 200
    assert by_key.json() == by_id.json()
    assert [a["subscription_id"] for a in by_key.json()["attempts"]] == [sub["id"]]
    # An event_id that spells another event's id: the event whose id it is wins.
    impostor = tenant.send(event_id=keyed["id"])
    assert impostor["id"] != keyed["id"] and not impostor["duplicate"]
    assert tenant.get(f"/events/{keyed['id']}").json()["event_id"] == "order-7"
    assert tenant.get(f"/events/{impostor['id']}").json()["event_id"] == keyed["id"]
    assert tenant.get("/events/order-8").status_code == 404
    assert tenant.get("/events/" + "k" * 256).status_code == 404
    other_tenant.event_type()
    other_tenant.send(event_id="order-9")
    assert tenant.get("/events/order-9").status_code == 404


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


# Ordering keys, deliver_at, expires_at, reserved types


def attempt_rows(database_url: str, event_id: str) -> dict[str, dict]:
    """The event's attempts in the database, by subscription id."""
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        rows = conn.execute(
            "SELECT subscription_id::text, trigger, due_at, expires_at, ordering_key, created_at"
            " FROM attempts WHERE event_id = %s ORDER BY id",
            (event_id,),
        ).fetchall()
    return rows


def test_deliver_at_expires_at_and_ordering_key_are_stored_and_shown(tenant, database_url):
    tenant.event_type()
    unordered = tenant.subscription()
    ordered = tenant.subscription(ordering="per_key")
    deliver_at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    expires_at = deliver_at + timedelta(hours=1)
    sent = tenant.send(
        ordering_key="customer-7",
        deliver_at=deliver_at.isoformat(),
        expires_at=expires_at.astimezone(timezone(timedelta(hours=2))).isoformat(),
    )
    assert sent["attempts_created"] == 2
    event = tenant.get(f"/events/{sent['id']}").json()
    assert event["ordering_key"] == "customer-7"
    assert event["deliver_at"] == deliver_at.isoformat().replace("+00:00", "Z")
    assert event["expires_at"] == expires_at.isoformat().replace("+00:00", "Z")
    assert [a["due_at"] for a in event["attempts"]] == [event["deliver_at"]] * 2
    listed = tenant.get("/events").json()["data"][0]
    assert (listed["ordering_key"], listed["deliver_at"]) == ("customer-7", event["deliver_at"])
    rows = {row["subscription_id"]: row for row in attempt_rows(database_url, sent["id"])}
    assert rows[unordered["id"]]["ordering_key"] is None
    assert rows[ordered["id"]]["ordering_key"] == "customer-7"
    for row in rows.values():
        assert row["due_at"] == deliver_at and row["expires_at"] == expires_at
    with psycopg.connect(database_url) as conn:
        stored = conn.execute(
            "SELECT ordering_key, deliver_at, expires_at FROM events WHERE id = %s",
            (sent["id"],),
        ).fetchone()
    assert stored == ("customer-7", deliver_at, expires_at)


def test_without_them_the_key_is_the_type_and_attempts_are_due_now(tenant, database_url):
    tenant.event_type()
    ordered = tenant.subscription(ordering="per_key")
    sent = tenant.send()
    event = tenant.get(f"/events/{sent['id']}").json()
    assert (event["ordering_key"], event["deliver_at"], event["expires_at"]) == (
        "invoice.paid",
        None,
        None,
    )
    (row,) = attempt_rows(database_url, sent["id"])
    assert row["subscription_id"] == ordered["id"] and row["ordering_key"] == "invoice.paid"
    assert row["due_at"] == row["created_at"] and row["expires_at"] is None
    # a deliver_at in the past means now (kept on the event as given)
    past = datetime(2020, 1, 1, tzinfo=UTC)
    late = tenant.send(deliver_at=past.isoformat())
    assert tenant.get(f"/events/{late['id']}").json()["deliver_at"] == "2020-01-01T00:00:00Z"
    (row,) = attempt_rows(database_url, late["id"])
    assert row["due_at"] == row["created_at"]


def test_an_expiry_not_in_the_future_or_before_deliver_at_is_422(tenant, database_url):
    tenant.event_type()
    tenant.subscription()
    now = datetime.now(UTC)
    cases = [
        ({"expires_at": (now - timedelta(seconds=1)).isoformat()}, "must be in the future"),
        (
            {
                "deliver_at": (now + timedelta(hours=2)).isoformat(),
                "expires_at": (now + timedelta(hours=1)).isoformat(),
            },
            "after deliver_at",
        ),
    ]
    for fields, message in cases:
        response = tenant.post("/events", {"event_type": "invoice.paid", "payload": {}, **fields})
        assert response.status_code == 422, response.text
        (error,) = response.json()["errors"]
        assert error["field"] == "expires_at" and message in error["message"]
    assert count(database_url, "events", tenant.id) == 0
    events = [{"event_type": "invoice.paid", "payload": {}} for _ in range(5)]
    events[3]["expires_at"] = "2020-01-01T00:00:00Z"
    batch = tenant.post("/events/batch", {"events": events})
    assert batch.status_code == 422
    assert batch.json()["errors"][0]["field"] == "events[3].expires_at"
    assert "events[3].expires_at" in batch.json()["detail"]
    assert count(database_url, "events", tenant.id) == 0
    assert count(database_url, "attempts", tenant.id) == 0
    for bad in ("", "k" * 256):
        response = tenant.post(
            "/events", {"event_type": "invoice.paid", "payload": {}, "ordering_key": bad}
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "ordering_key"
    response = tenant.post(
        "/events", {"event_type": "invoice.paid", "payload": {}, "deliver_at": "x"}
    )
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "deliver_at"


def test_events_of_hookpost_types_are_refused(tenant, database_url):
    tenant.event_type()
    tenant.subscription()
    for name in ("hookpost.circuit.opened", "hookpost.anything"):
        response = tenant.post("/events", {"event_type": name, "payload": {}})
        assert response.status_code == 422
        (error,) = response.json()["errors"]
        assert error["field"] == "event_type" and "reserved" in error["message"]
    events = [
        {"event_type": "invoice.paid", "payload": {}},
        {"event_type": "hookpost.attempt.gave_up", "payload": {}},
    ]
    batch = tenant.post("/events/batch", {"events": events})
    assert batch.status_code == 422
    assert batch.json()["errors"][0]["field"] == "events[1].event_type"
    assert count(database_url, "events", tenant.id) == 0


def test_replays_and_retries_carry_the_key_and_never_expire(tenant, database_url):
    tenant.event_type()
    unordered = tenant.subscription()
    ordered = tenant.subscription(ordering="per_key")
    expires_at = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    sent = tenant.send(ordering_key="k-1", expires_at=expires_at)
    assert tenant.post(f"/events/{sent['id']}/replay").json()["attempts_created"] == 2
    (first,) = tenant.get(
        "/attempts", params={"event_id": sent["id"], "subscription_id": ordered["id"]}
    ).json()["data"][-1:]
    assert tenant.post(f"/attempts/{first['id']}/retry").status_code == 202
    rows = attempt_rows(database_url, sent["id"])
    assert [
        (r["trigger"], r["ordering_key"]) for r in rows if r["subscription_id"] == ordered["id"]
    ] == [
        ("event", "k-1"),
        ("replay", "k-1"),
        ("manual", "k-1"),
    ]
    assert {r["ordering_key"] for r in rows if r["subscription_id"] == unordered["id"]} == {None}
    assert [r["expires_at"] is None for r in rows] == [False, False, True, True, True]


def test_timestamps_that_cannot_be_read_back_are_refused(tenant, database_url):
    tenant.event_type()
    for field in ("occurred_at", "deliver_at", "expires_at"):
        for value in ("9999-12-31T23:59:59-15:00", "0001-01-01T00:00:00+15:00"):
            response = tenant.post(
                "/events", {"event_type": "invoice.paid", "payload": {}, field: value}
            )
            assert response.status_code == 422, (field, value)
            assert response.json()["errors"][0]["field"] == field
    assert count(database_url, "events", tenant.id) == 0
