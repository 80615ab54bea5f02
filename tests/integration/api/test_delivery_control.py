"""What a subscription receives and how, and an event's priority, through the API: `filter`,
`batch`, `debounce_s`, `payload` and `priority` are set on create or PATCH, cleared with null,
shown on every answer, and a bad value is a 422 naming its field."""

from __future__ import annotations

import pytest

SHAPING = {
    "filter": '$.amount >= 100 && $.currency == "EUR"',
    "batch": {"max_events": 50, "max_wait_ms": 200},
    "debounce_s": 30,
    "payload": "thin",
}


def test_a_new_subscription_receives_everything_one_by_one_in_full(tenant):
    sub = tenant.subscription()
    assert sub["filter"] is None and sub["batch"] is None and sub["debounce_s"] is None
    assert sub["payload"] == "full"


def test_the_fields_round_trip_on_every_answer(tenant):
    sub = tenant.subscription(**SHAPING)
    for shown in (
        sub,
        tenant.get(f"/subscriptions/{sub['id']}").json(),
        tenant.get("/subscriptions").json()["data"][0],
        tenant.post(f"/subscriptions/{sub['id']}/rotate-secret").json(),
    ):
        assert {field: shown[field] for field in SHAPING} == SHAPING


def test_patch_sets_changes_and_clears_them(tenant):
    sub = tenant.subscription()
    patched = tenant.patch(f"/subscriptions/{sub['id']}", SHAPING).json()
    assert {field: patched[field] for field in SHAPING} == SHAPING
    patched = tenant.patch(
        f"/subscriptions/{sub['id']}", {"batch": {"max_events": 2, "max_wait_ms": 0}}
    ).json()
    assert patched["batch"] == {"max_events": 2, "max_wait_ms": 0}
    assert patched["filter"] == SHAPING["filter"], "a PATCH changes only what it names"
    cleared = tenant.patch(
        f"/subscriptions/{sub['id']}", {"filter": None, "batch": None, "debounce_s": None}
    ).json()
    assert cleared["filter"] is None and cleared["batch"] is None and cleared["debounce_s"] is None
    assert tenant.get(f"/subscriptions/{sub['id']}").json()["payload"] == "thin"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("batch", {"max_events": 1, "max_wait_ms": 0}),
        ("batch", {"max_events": 1001, "max_wait_ms": 0}),
        ("batch", {"max_events": 10, "max_wait_ms": 60001}),
        ("batch", {"max_events": 10, "max_wait_ms": -1}),
        ("batch", {"max_events": 10}),
        ("debounce_s", 0),
        ("debounce_s", 3601),
        ("payload", "summary"),
    ],
)
def test_bad_values_are_422_naming_the_field(tenant, field, value):
    body = {"url": "http://127.0.0.1:9/", "event_types": ["*"], field: value}
    for response in (
        tenant.post("/subscriptions", body),
        tenant.patch(f"/subscriptions/{tenant.subscription()['id']}", {field: value}),
    ):
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"][0]["field"].split(".")[0] == field


def test_payload_may_not_be_null(tenant):
    response = tenant.patch(f"/subscriptions/{tenant.subscription()['id']}", {"payload": None})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "payload"


@pytest.mark.parametrize(
    ("path", "postgres_says"),
    [
        ("$.amount >=", "syntax error"),
        ("$.amount", "single boolean result is expected"),
        ('$.name like_regex "(" ', "invalid regular expression"),
    ],
)
def test_an_invalid_filter_is_422_with_postgresqls_message(tenant, path, postgres_says):
    body = {"url": "http://127.0.0.1:9/", "event_types": ["*"], "filter": path}
    for response in (
        tenant.post("/subscriptions", body),
        tenant.patch(f"/subscriptions/{tenant.subscription()['id']}", {"filter": path}),
    ):
        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["errors"][0]["field"] == "filter"
        assert postgres_says in problem["errors"][0]["message"]
        assert postgres_says in problem["detail"]


def test_an_event_carries_its_priority(tenant):
    tenant.event_type("invoice.paid")
    normal = tenant.send()
    high = tenant.send(priority="high")
    low = tenant.post(
        "/events/batch",
        {"events": [{"event_type": "invoice.paid", "payload": {}, "priority": "low"}]},
    ).json()["data"][0]
    assert tenant.get(f"/events/{normal['id']}").json()["priority"] == "normal"
    assert tenant.get(f"/events/{high['id']}").json()["priority"] == "high"
    listed = {e["id"]: e["priority"] for e in tenant.get("/events").json()["data"]}
    assert listed[low["id"]] == "low"


def test_an_unknown_priority_is_422_naming_it(tenant):
    tenant.event_type("invoice.paid")
    response = tenant.post(
        "/events", {"event_type": "invoice.paid", "payload": {}, "priority": "urgent"}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "priority"
    response = tenant.post(
        "/events/batch",
        {"events": [{"event_type": "invoice.paid", "payload": {}, "priority": "urgent"}]},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "events[0].priority"


def test_the_attempts_filter_takes_superseded(tenant):
    response = tenant.get("/attempts", params={"status": "superseded"})
    assert response.status_code == 200 and response.json()["data"] == []


def test_the_openapi_document_describes_the_fields(api):
    schemas = api.get("/v1/openapi.json").json()["components"]["schemas"]
    for field in SHAPING:
        assert field in schemas["SubscriptionIn"]["properties"]
        assert field in schemas["Subscription"]["properties"]
    assert "priority" in schemas["EventIn"]["properties"]
    assert "batch_id" in schemas["Attempt"]["properties"]
