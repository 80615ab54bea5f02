"""Subscriptions: targets, matching fields, secrets and their rotation."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import psycopg
import pytest


def test_create_generates_a_standard_webhooks_secret(tenant):
    sub = tenant.subscription(
        "https://hooks.example.com/in",
        event_types=["invoice.paid", "*"],
        labels={"region": "eu"},
        headers={"X-Team": "billing"},
        description="billing",
    )
    assert sub["secret"].startswith("whsec_")
    assert 24 <= len(base64.b64decode(sub["secret"].removeprefix("whsec_"))) <= 64
    assert sub["enabled"] is True and sub["labels"] == {"region": "eu"}
    assert sub["headers"] == {"X-Team": "billing"}
    assert sorted(sub["event_types"]) == ["*", "invoice.paid"]


def test_a_given_secret_is_kept_and_a_bad_one_refused(tenant):
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    assert tenant.subscription(secret=secret)["secret"] == secret
    for bad in ("nope", "whsec_!!!", "whsec_" + base64.b64encode(b"short").decode()):
        response = tenant.post(
            "/subscriptions", {"url": "http://127.0.0.1:9/", "event_types": ["*"], "secret": bad}
        )
        assert response.status_code == 422, bad
        assert response.json()["errors"][0]["field"] == "secret"


def test_get_shows_the_secret_and_the_list_does_not(tenant):
    sub = tenant.subscription()
    assert tenant.get(f"/subscriptions/{sub['id']}").json()["secret"] == sub["secret"]
    listed = tenant.get("/subscriptions").json()["data"]
    assert [s["id"] for s in listed] == [sub["id"]]
    assert "secret" not in listed[0]


def test_patch_changes_what_it_names(tenant):
    sub = tenant.subscription(description="keep me")
    patched = tenant.patch(
        f"/subscriptions/{sub['id']}",
        {
            "enabled": False,
            "url": "http://127.0.0.1:8080/new",
            "event_types": ["a.b"],
            "labels": {"k": "v"},
            "headers": {"X-A": "1"},
        },
    )
    assert patched.status_code == 200
    body = patched.json()
    assert body["enabled"] is False and body["url"] == "http://127.0.0.1:8080/new"
    assert body["event_types"] == ["a.b"] and body["labels"] == {"k": "v"}
    assert body["headers"] == {"X-A": "1"} and body["description"] == "keep me"
    assert body["updated_at"] >= sub["updated_at"]
    assert tenant.patch(f"/subscriptions/{sub['id']}", {"enabled": True}).json()["enabled"]
    assert tenant.patch(f"/subscriptions/{sub['id']}", {"url": None}).status_code == 422


def test_reserved_and_malformed_headers_are_refused(tenant):
    for headers in (
        {"webhook-id": "x"},
        {"Content-Type": "text/plain"},
        {"Bad Name": "x"},
        {"X-Split": "a\r\nb"},
    ):
        response = tenant.post(
            "/subscriptions",
            {"url": "http://127.0.0.1:9/", "event_types": ["*"], "headers": headers},
        )
        assert response.status_code == 422, headers


def test_event_type_names_are_validated(tenant):
    response = tenant.post("/subscriptions", {"url": "http://127.0.0.1:9/", "event_types": ["a b"]})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "event_types[0]"
    empty = tenant.post("/subscriptions", {"url": "http://127.0.0.1:9/", "event_types": []})
    assert empty.status_code == 422


def test_rotation_keeps_the_old_secret_for_24_hours(tenant, database_url):
    sub = tenant.subscription()
    rotated = tenant.post(f"/subscriptions/{sub['id']}/rotate-secret")
    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_") and new_secret != sub["secret"]
    assert tenant.get(f"/subscriptions/{sub['id']}").json()["secret"] == new_secret
    with psycopg.connect(database_url) as conn:
        previous, expires = conn.execute(
            "SELECT previous_secret, previous_secret_expires_at FROM subscriptions WHERE id = %s",
            (sub["id"],),
        ).fetchone()
    assert previous == sub["secret"]
    expected = datetime.now(UTC) + timedelta(hours=24)
    assert abs((expires - expected).total_seconds()) < 60


def test_delete_removes_the_subscription(tenant):
    sub = tenant.subscription()
    assert tenant.delete(f"/subscriptions/{sub['id']}").status_code == 204
    assert tenant.get(f"/subscriptions/{sub['id']}").status_code == 404
    assert tenant.delete(f"/subscriptions/{sub['id']}").status_code == 404


REFUSED_TARGETS = [
    "http://127.0.0.1/hook",
    "http://localhost:8080/hook",
    "http://2130706433/hook",
    "http://127.1/hook",
    "http://0x7f.0.0.1/hook",
    "http://0177.0.0.1/hook",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://10.0.0.8/hook",
    "http://192.168.1.1/hook",
    "http://[fe80::1]/hook",
    "http://224.0.0.1/hook",
    "http://0.0.0.0/hook",
    "ftp://example.com/hook",
    "file:///etc/passwd",
]


@pytest.mark.parametrize("url", REFUSED_TARGETS)
def test_private_targets_are_refused_by_default(tenant, env, url):
    env(HOOKPOST_ALLOW_PRIVATE_TARGETS="false")
    response = tenant.post("/subscriptions", {"url": url, "event_types": ["*"]})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "url"
    assert tenant.get("/subscriptions").json()["data"] == []


def test_private_targets_are_refused_on_update_too(tenant, env):
    sub = tenant.subscription("https://hooks.example.com/in")
    env(HOOKPOST_ALLOW_PRIVATE_TARGETS="false")
    response = tenant.patch(f"/subscriptions/{sub['id']}", {"url": "http://10.1.2.3/"})
    assert response.status_code == 422
    assert tenant.get(f"/subscriptions/{sub['id']}").json()["url"] == "https://hooks.example.com/in"


def test_public_targets_are_accepted_when_private_ones_are_refused(tenant, env):
    env(HOOKPOST_ALLOW_PRIVATE_TARGETS="false")
    assert tenant.subscription("https://93.184.216.34/hook")["url"] == "https://93.184.216.34/hook"
