"""Portal sessions: an `hpp_` token reaches only its customer's subscriptions, events and
attempts, through only the routes a customer uses; expired or revoked, it is refused."""

from __future__ import annotations

import re

import psycopg
import pytest

from hookpost.api.app import resolver
from hookpost.api.scope import PORTAL_ROUTES
from support import ADMIN, Tenant


@pytest.fixture
def shop(tenant: Tenant) -> dict:
    """Two customers' subscriptions, events and attempts in one application."""
    tenant.event_type()
    ours = tenant.subscription(labels={"customer": "acme"})
    theirs = tenant.subscription(labels={"customer": "globex"})
    our_event = tenant.send(labels={"customer": "acme"})
    their_event = tenant.send(labels={"customer": "globex"})
    attempts = {a["subscription_id"]: a["id"] for a in tenant.get("/attempts").json()["data"]}
    return {
        "ours": ours["id"],
        "theirs": theirs["id"],
        "our_event": our_event["id"],
        "their_event": their_event["id"],
        "our_attempt": attempts[ours["id"]],
        "their_attempt": attempts[theirs["id"]],
    }


def portal(tenant: Tenant, labels: dict | None = None, **fields) -> dict:
    body = {"labels": labels or {"customer": "acme"}, **fields}
    response = tenant.post("/portal-sessions", body)
    assert response.status_code == 201, response.text
    return response.json()


def as_portal(tenant: Tenant, token: str) -> Tenant:
    return Tenant(tenant.api, tenant.id, token)


def test_a_session_is_created_with_a_token_a_url_and_its_labels(tenant):
    session = portal(tenant, ttl_s=120)
    assert session["token"].startswith("hpp_")
    assert session["labels"] == {"customer": "acme"}
    assert re.fullmatch(r"https://hookpost\.test/console#link=hppl_[\w-]+", session["url"])
    assert set(session) == {"id", "token", "url", "expires_at", "labels"}


def test_tokens_and_links_are_stored_only_hashed(tenant, database_url):
    session = portal(tenant)
    link = session["url"].split("#link=")[1]
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT row_to_json(p)::text FROM portal_sessions p WHERE id = %s", (session["id"],)
        ).fetchone()[0]
    assert session["token"] not in row and link not in row


@pytest.mark.parametrize(
    "body, field",
    [
        ({"labels": {}}, "labels"),
        ({}, "labels"),
        ({"labels": {"customer": "acme"}, "ttl_s": 59}, "ttl_s"),
        ({"labels": {"customer": "acme"}, "ttl_s": 86401}, "ttl_s"),
        ({"labels": {"customer": 1}}, "labels.customer"),
        ({"labels": {"customer": "acme"}, "extra": 1}, "extra"),
    ],
)
def test_bad_sessions_are_422_and_store_nothing(tenant, database_url, body, field):
    response = tenant.post("/portal-sessions", body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert any(e["field"] == field for e in response.json()["errors"]), response.json()
    with psycopg.connect(database_url) as conn:
        count = conn.execute(
            "SELECT count(*) FROM portal_sessions WHERE application_id = %s", (tenant.id,)
        ).fetchone()[0]
    assert count == 0


def test_only_an_application_key_makes_or_revokes_sessions(api, tenant, other_tenant):
    path = tenant.path("/portal-sessions")
    assert api.post(path, headers=ADMIN, json={"labels": {"a": "b"}}).status_code == 403
    assert (
        api.post(path, headers=other_tenant.headers, json={"labels": {"a": "b"}}).status_code == 404
    )
    session = portal(tenant)
    customer = as_portal(tenant, session["token"])
    assert customer.post("/portal-sessions", {"labels": {"customer": "x"}}).status_code == 403
    assert customer.delete(f"/portal-sessions/{session['id']}").status_code == 403


def portal_calls(ids: dict[str, str], mine: bool) -> list[tuple[str, str, object]]:
    """Every route a portal session may use, on its own resources or on another customer's."""
    sub = ids["ours" if mine else "theirs"]
    event = ids["our_event" if mine else "their_event"]
    attempt = ids["our_attempt" if mine else "their_attempt"]
    return [
        ("GET", f"/subscriptions/{sub}", None),
        ("PATCH", f"/subscriptions/{sub}", {"description": "edited"}),
        ("POST", f"/subscriptions/{sub}/rotate-secret", None),
        ("POST", f"/subscriptions/{sub}/recover", {"since": "2020-01-01T00:00:00Z"}),
        ("POST", f"/subscriptions/{sub}/test", None),
        ("GET", f"/events/{event}", None),
        ("POST", f"/events/{event}/replay", None),
        ("GET", f"/attempts/{attempt}", None),
        ("POST", f"/attempts/{attempt}/retry", None),
        ("DELETE", f"/subscriptions/{sub}", None),
    ]


def test_every_portal_route_is_tested_here():
    """A route added to PORTAL_ROUTES must be added to the calls above (and below)."""
    listed = {
        (method, re.sub(r"/[0-9a-f-]{36}", "/*", suffix).lstrip("/"))
        for method, suffix, _ in portal_calls(
            {
                k: "00000000-0000-7000-8000-000000000000"
                for k in ("ours", "our_event", "our_attempt")
            },
            mine=True,
        )
    } | {
        ("GET", "event-types"),
        ("GET", "subscriptions"),
        ("POST", "subscriptions"),
        ("GET", "events"),
        ("GET", "attempts"),
    }
    assert listed == set(PORTAL_ROUTES)


def test_another_customers_resources_read_as_missing(api, tenant, shop):
    customer = as_portal(tenant, portal(tenant)["token"])
    for method, suffix, body in portal_calls(shop, mine=False):
        response = api.request(method, tenant.path(suffix), headers=customer.headers, json=body)
        assert response.status_code == 404, (method, suffix, response.text)
    # nothing of theirs changed
    theirs = tenant.get(f"/subscriptions/{shop['theirs']}").json()
    assert theirs["description"] is None
    assert (
        len(tenant.get("/attempts", params={"subscription_id": shop["theirs"]}).json()["data"]) == 1
    )


def test_its_own_resources_are_reachable(api, tenant, shop):
    customer = as_portal(tenant, portal(tenant)["token"])
    expected = [200, 200, 200, 202, 202, 200, 202, 200, 202, 204]
    for (method, suffix, body), status in zip(portal_calls(shop, mine=True), expected, strict=True):
        response = api.request(method, tenant.path(suffix), headers=customer.headers, json=body)
        assert response.status_code == status, (method, suffix, response.text)


def test_lists_show_only_its_own(tenant, shop):
    customer = as_portal(tenant, portal(tenant)["token"])
    subs = customer.get("/subscriptions").json()["data"]
    assert [s["id"] for s in subs] == [shop["ours"]]
    events = customer.get("/events").json()["data"]
    assert [e["id"] for e in events] == [shop["our_event"]]
    assert customer.get("/events", params={"label.customer": "globex"}).json()["data"] == []
    attempts = customer.get("/attempts").json()["data"]
    assert [a["id"] for a in attempts] == [shop["our_attempt"]]
    assert customer.get("/event-types").status_code == 200


def test_an_event_shows_only_attempts_to_its_subscriptions(tenant, shop):
    tenant.subscription()  # no labels: receives every customer's events
    shared = tenant.send(labels={"customer": "acme"})
    customer = as_portal(tenant, portal(tenant)["token"])
    assert len(tenant.get(f"/events/{shared['id']}").json()["attempts"]) == 2
    attempts = customer.get(f"/events/{shared['id']}").json()["attempts"]
    assert [a["subscription_id"] for a in attempts] == [shop["ours"]]
    replayed = customer.post(f"/events/{shared['id']}/replay").json()
    assert replayed["attempts_created"] == 1
    other = customer.post(f"/events/{shared['id']}/replay", {"subscription_ids": [shop["theirs"]]})
    assert other.status_code == 422


def test_subscriptions_it_creates_carry_its_labels_for_good(tenant):
    customer = as_portal(tenant, portal(tenant)["token"])
    created = customer.post(
        "/subscriptions",
        {"url": "http://127.0.0.1:9/x", "event_types": ["*"], "labels": {"team": "ops"}},
    )
    assert created.status_code == 201, created.text
    assert created.json()["labels"] == {"customer": "acme", "team": "ops"}
    sub = created.json()["id"]
    cleared = customer.patch(f"/subscriptions/{sub}", {"labels": {}})
    assert cleared.json()["labels"] == {"customer": "acme"}
    moved = customer.patch(f"/subscriptions/{sub}", {"labels": {"customer": "globex"}})
    assert moved.status_code == 422
    assert moved.json()["errors"][0]["field"] == "labels.customer"
    foreign = customer.post(
        "/subscriptions",
        {"url": "http://127.0.0.1:9/x", "event_types": ["*"], "labels": {"customer": "globex"}},
    )
    assert foreign.status_code == 422
    assert tenant.get(f"/subscriptions/{sub}").json()["labels"] == {"customer": "acme"}


def test_every_other_route_is_forbidden(api, tenant, shop):
    """Each route of the API not in PORTAL_ROUTES answers a portal token 403 (or, outside
    the application, whatever it answers anyone)."""
    customer = as_portal(tenant, portal(tenant)["token"])
    routes = {(r.method, r.path) for r in resolver._static_routes + resolver._dynamic_routes}
    checked = 0
    for method, template in routes:
        path = re.sub(r"<(\w+)>", lambda m: _id(m.group(1), shop, tenant), template)
        if not path.startswith("/v1/applications"):
            continue
        rest = path.split("/")[4:]
        shape = "/".join(p if i % 2 == 0 else "*" for i, p in enumerate(rest))
        if (method, shape) in PORTAL_ROUTES:
            continue
        response = api.request(method, path, headers=customer.headers, json={})
        assert response.status_code == 403, (method, path, response.text)
        checked += 1
    assert checked >= 12


def _id(name: str, shop: dict, tenant: Tenant) -> str:
    return {"app_id": tenant.id, "name": "invoice.paid"}.get(name, shop["ours"])


def test_another_application_reads_as_missing(api, tenant, other_tenant):
    customer = as_portal(tenant, portal(tenant)["token"])
    response = api.get(other_tenant.path("/subscriptions"), headers=customer.headers)
    assert response.status_code == 404


def test_a_revoked_session_is_refused_at_once(tenant, shop):
    session = portal(tenant)
    customer = as_portal(tenant, session["token"])
    assert customer.get("/subscriptions").status_code == 200
    assert tenant.delete(f"/portal-sessions/{session['id']}").status_code == 204
    assert customer.get("/subscriptions").status_code == 401
    assert customer.get(f"/subscriptions/{shop['ours']}").status_code == 401
    assert tenant.delete(f"/portal-sessions/{session['id']}").status_code == 204


def test_an_expired_session_is_refused(tenant, database_url):
    session = portal(tenant)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE portal_sessions SET expires_at = now() - interval '1 second' WHERE id = %s",
            (session["id"],),
        )
    response = as_portal(tenant, session["token"]).get("/subscriptions")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_a_link_is_exchanged_once_for_a_token_of_the_same_session(api, tenant, shop):
    session = portal(tenant)
    link = session["url"].split("#link=")[1]
    exchanged = api.post("/v1/portal/exchange", json={"link": link})
    assert exchanged.status_code == 200, exchanged.text
    body = exchanged.json()
    assert body["application_id"] == tenant.id and body["labels"] == {"customer": "acme"}
    assert body["token"].startswith("hpp_") and body["token"] != session["token"]
    console = as_portal(tenant, body["token"])
    assert [s["id"] for s in console.get("/subscriptions").json()["data"]] == [shop["ours"]]
    assert api.post("/v1/portal/exchange", json={"link": link}).status_code == 401
    # revoking the session ends both tokens
    tenant.delete(f"/portal-sessions/{session['id']}")
    assert console.get("/subscriptions").status_code == 401


def test_a_revoked_sessions_link_is_refused(api, tenant):
    session = portal(tenant)
    tenant.delete(f"/portal-sessions/{session['id']}")
    link = session["url"].split("#link=")[1]
    assert api.post("/v1/portal/exchange", json={"link": link}).status_code == 401
    assert api.post("/v1/portal/exchange", json={"link": "hppl_nothing"}).status_code == 401
    assert api.post("/v1/portal/exchange", json={}).status_code == 422
