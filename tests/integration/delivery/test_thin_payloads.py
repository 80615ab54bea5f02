"""Thin payloads (`payload: "thin"`): the receiver gets `{id, event_id, fetch_url}` as `data`, and
`GET fetch_url`, with no credentials, answers the full event for 24 hours; a guessed or altered
link answers 404, an expired one 410."""

from __future__ import annotations

import json
import time
import uuid

import psycopg
import pytest

from hookpost.links import LINK_TTL_S, make_token
from support_delivery import delivering
from support_process import wait_for

PUBLIC_URL = "http://hookpost.test"


@pytest.fixture
def thin(tenant, receiver, fast, env) -> dict:
    env(HOOKPOST_PUBLIC_URL=PUBLIC_URL)
    tenant.event_type("invoice.paid")
    return tenant.subscription(url=receiver.url, payload="thin")


def _delivered_data(receiver, thin: dict, count: int = 1) -> list[dict]:
    with delivering():
        wait_for(lambda: len(receiver.requests) >= count, timeout=10, what="thin deliveries")
    return [r.verify(thin["secret"])["data"] for r in receiver.requests]


def _stored_secret(database_url: str, subscription_id: str) -> str:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT secret FROM subscriptions WHERE id = %s", (subscription_id,)
        ).fetchone()[0]


def test_the_receiver_gets_a_link_that_answers_the_full_event(tenant, thin, receiver, api):
    sent = tenant.send(payload={"amount": 250, "note": "secret stuff"}, event_id="inv-1")
    [data] = _delivered_data(receiver, thin)
    assert set(data) == {"id", "event_id", "fetch_url"}
    assert data["id"] == sent["id"] and data["event_id"] == "inv-1"
    assert data["fetch_url"].startswith(f"{PUBLIC_URL}/v1/fetch/")
    assert b"secret stuff" not in receiver.requests[0].body
    assert receiver.requests[0].webhook_id == sent["id"]

    fetched = api.get(data["fetch_url"])  # no Authorization header
    assert fetched.status_code == 200, fetched.text
    event = tenant.get(f"/events/{sent['id']}").json()
    assert fetched.json() == {
        "id": sent["id"],
        "event_id": "inv-1",
        "type": "invoice.paid",
        "timestamp": event["occurred_at"],
        "data": {"amount": 250, "note": "secret stuff"},
    }
    # Still answers after the secret is rotated: the previous one signs alongside for 24 h.
    tenant.post(f"/subscriptions/{thin['id']}/rotate-secret")
    assert api.get(data["fetch_url"]).status_code == 200


def test_a_guessed_or_altered_link_is_404(tenant, thin, receiver, api):
    tenant.send()
    [data] = _delivered_data(receiver, thin)
    token = data["fetch_url"].rsplit("/", 1)[1]
    flipped = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    for bad in (
        flipped,
        token[:-1] + ("A" if token[-1] != "A" else "Q"),
        token + "x",
        token[:-2],
        "A" * len(token),
        "not-a-token",
    ):
        response = api.get(f"/v1/fetch/{bad}")
        assert response.status_code == 404, bad
        assert response.headers["content-type"] == "application/problem+json"


def test_a_link_to_an_event_the_subscription_was_not_sent_is_404(tenant, thin, api, database_url):
    tenant.patch(f"/subscriptions/{thin['id']}", {"event_types": ["invoice.voided"]})
    other = tenant.send()
    assert other["attempts_created"] == 0
    # A link made with this subscription's own key (as its receiver could, holding the secret
    # when secrets are not sealed) reaches only what it was sent.
    token = make_token(
        uuid.UUID(other["id"]),
        uuid.UUID(thin["id"]),
        _stored_secret(database_url, thin["id"]),
        now=time.time(),
    )
    assert api.get(f"/v1/fetch/{token}").status_code == 404


def test_an_expired_link_is_410(tenant, thin, receiver, api, database_url):
    sent = tenant.send()
    _delivered_data(receiver, thin)
    # The link its send made a day and a second ago.
    token = make_token(
        uuid.UUID(sent["id"]),
        uuid.UUID(thin["id"]),
        _stored_secret(database_url, thin["id"]),
        now=time.time() - LINK_TTL_S - 1,
    )
    response = api.get(f"/v1/fetch/{token}")
    assert response.status_code == 410, response.text
    assert response.json()["status"] == 410


def test_a_full_subscription_beside_it_gets_the_payload(tenant, thin, receiver):
    tenant.subscription(url=receiver.url + "/full")
    tenant.send(payload={"amount": 3})
    with delivering():
        wait_for(lambda: len(receiver.requests) == 2, timeout=10, what="two deliveries")
    bodies = {r.path: json.loads(r.body)["data"] for r in receiver.requests}
    assert bodies["/hook/full"] == {"amount": 3}
    assert set(bodies["/hook"]) == {"id", "event_id", "fetch_url"}
