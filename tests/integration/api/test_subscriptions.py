"""Subscriptions: targets, matching fields, secrets and their rotation."""

from __future__ import annotations

import base64
import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from hookpost.db.pool import close_pool
from hookpost.ids import uuid7
from support_process import wait_for


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


# Delivery settings, health and operational event types

HEALTHY = {
    "circuit": "closed",
    "open_since": None,
    "probe_at": None,
    "failure_streak": 0,
    "paced_per_s": None,
    "paused_until": None,
    "recent": {"attempts": 0, "success_rate": None, "p50_ms": None},
}


def stored_settings(database_url: str, sub_id: str) -> tuple:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT rate_limit_per_s, max_in_flight, ordering FROM subscriptions WHERE id = %s",
            (sub_id,),
        ).fetchone()


def test_delivery_settings_default_to_unlimited_and_unordered(tenant, database_url):
    sub = tenant.subscription()
    assert (sub["rate_limit_per_s"], sub["max_in_flight"], sub["ordering"]) == (None, None, "none")
    assert stored_settings(database_url, sub["id"]) == (None, None, "none")


def test_delivery_settings_round_trip(tenant, database_url):
    sub = tenant.subscription(rate_limit_per_s=2.5, max_in_flight=10, ordering="per_key")
    expected = {"rate_limit_per_s": 2.5, "max_in_flight": 10, "ordering": "per_key"}
    assert {k: sub[k] for k in expected} == expected
    shown = tenant.get(f"/subscriptions/{sub['id']}").json()
    assert {k: shown[k] for k in expected} == expected
    (listed,) = tenant.get("/subscriptions").json()["data"]
    assert {k: listed[k] for k in expected} == expected
    assert stored_settings(database_url, sub["id"]) == (2.5, 10, "per_key")
    edges = tenant.subscription(rate_limit_per_s=10000, max_in_flight=1000)
    assert (edges["rate_limit_per_s"], edges["max_in_flight"]) == (10000, 1000)
    slow = tenant.subscription(rate_limit_per_s=0.01, max_in_flight=1)
    assert (slow["rate_limit_per_s"], slow["max_in_flight"]) == (0.01, 1)


BAD_SETTINGS = [
    ("rate_limit_per_s", 0),
    ("rate_limit_per_s", -1),
    ("rate_limit_per_s", 10000.5),
    ("rate_limit_per_s", "fast"),
    ("max_in_flight", 0),
    ("max_in_flight", 1001),
    ("max_in_flight", 1.5),
    ("ordering", "fifo"),
    ("ordering", None),
]


@pytest.mark.parametrize(("field", "value"), BAD_SETTINGS)
def test_bad_delivery_settings_are_422_naming_the_field(tenant, field, value):
    response = tenant.post(
        "/subscriptions", {"url": "http://127.0.0.1:9/", "event_types": ["*"], field: value}
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert tenant.get("/subscriptions").json()["data"] == []
    sub = tenant.subscription()
    patched = tenant.patch(f"/subscriptions/{sub['id']}", {field: value})
    assert patched.status_code == 422, patched.text
    assert [e["field"] for e in patched.json()["errors"]] == [field]
    assert tenant.get(f"/subscriptions/{sub['id']}").json()["ordering"] == "none"


def test_patch_sets_and_clears_the_limits(tenant, database_url):
    sub = tenant.subscription(description="keep me")
    path = f"/subscriptions/{sub['id']}"
    set_ = tenant.patch(path, {"rate_limit_per_s": 50, "max_in_flight": 4}).json()
    assert (set_["rate_limit_per_s"], set_["max_in_flight"], set_["ordering"]) == (50, 4, "none")
    only_rate = tenant.patch(path, {"rate_limit_per_s": None}).json()
    assert (only_rate["rate_limit_per_s"], only_rate["max_in_flight"]) == (None, 4)
    cleared = tenant.patch(path, {"max_in_flight": None}).json()
    assert (cleared["rate_limit_per_s"], cleared["max_in_flight"]) == (None, None)
    assert cleared["description"] == "keep me" and cleared["health"] == HEALTHY
    assert stored_settings(database_url, sub["id"]) == (None, None, "none")
    ordered = tenant.patch(path, {"ordering": "per_key"}).json()
    assert ordered["ordering"] == "per_key" and ordered["health"] == HEALTHY
    assert stored_settings(database_url, sub["id"]) == (None, None, "per_key")
    assert tenant.patch(path, {"ordering": None}).status_code == 422
    assert (
        tenant.patch(
            "/subscriptions/01a20000-0000-7000-8000-000000000000", {"ordering": "none"}
        ).status_code
        == 404
    )


def test_a_new_subscription_is_healthy_in_every_answer(tenant):
    sub = tenant.subscription()
    assert sub["health"] == HEALTHY
    path = f"/subscriptions/{sub['id']}"
    assert tenant.get(path).json()["health"] == HEALTHY
    assert tenant.get("/subscriptions").json()["data"][0]["health"] == HEALTHY
    assert tenant.patch(path, {"description": "x"}).json()["health"] == HEALTHY
    assert tenant.patch(path, {}).json()["health"] == HEALTHY
    assert tenant.post(f"{path}/rotate-secret").json()["health"] == HEALTHY


def test_health_shows_the_delivery_state(tenant, database_url):
    tenant.event_type()
    sub = tenant.subscription()
    opened = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    probe = datetime.now(UTC) + timedelta(minutes=5)
    paused = datetime.now(UTC) + timedelta(minutes=1)
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE subscription_health SET circuit = 'open', opened_at = %s, probe_at = %s,"
            " failure_streak = 7, pace_per_s = 2.5, paused_until = %s WHERE subscription_id = %s",
            (opened, probe, paused, sub["id"]),
        )
    health = tenant.get(f"/subscriptions/{sub['id']}").json()["health"]
    assert health["circuit"] == "open" and health["open_since"] == "2026-01-02T03:04:05Z"
    assert datetime.fromisoformat(health["probe_at"]) == probe
    assert datetime.fromisoformat(health["paused_until"]) == paused
    assert health["failure_streak"] == 7 and health["paced_per_s"] == 2.5
    # The probe time came and a probe is on the wire: half open.
    sent = tenant.send()
    with psycopg.connect(database_url) as conn:
        (probe_id,) = conn.execute(
            "UPDATE attempts SET status = 'in_flight' WHERE event_id = %s RETURNING id",
            (sent["id"],),
        ).fetchone()
        conn.execute(
            "UPDATE subscription_health SET probe_at = now() - interval '1 second',"
            " paused_until = now() - interval '1 second' WHERE subscription_id = %s",
            (sub["id"],),
        )
        conn.execute(
            "UPDATE subscription_state SET probe_id = %s WHERE subscription_id = %s",
            (probe_id, sub["id"]),
        )
    half_open = tenant.get("/subscriptions").json()["data"][0]["health"]
    assert half_open["circuit"] == "half_open"
    assert half_open["open_since"] == "2026-01-02T03:04:05Z"
    assert half_open["probe_at"] is None  # the probe is on its way
    assert half_open["paused_until"] is None  # a pause that is over
    with psycopg.connect(database_url) as conn:
        conn.execute("DELETE FROM attempts WHERE id = %s", (probe_id,))
        conn.execute(
            "UPDATE subscription_health SET circuit = 'closed', failure_streak = 0,"
            " pace_per_s = NULL WHERE subscription_id = %s",
            (sub["id"],),
        )
    assert tenant.get(f"/subscriptions/{sub['id']}").json()["health"] == HEALTHY


def test_recent_health_counts_the_last_100_finished_attempts(tenant, database_url):
    tenant.event_type()
    sub = tenant.subscription()
    other = tenant.subscription()
    event_id = tenant.send()["id"]  # one pending attempt each, not counted

    def insert(status: str, count: int, elapsed_ms: int | None = None) -> None:
        # Ids made here strictly increase: each call's attempts are newer than the last call's.
        ids = [uuid7() for _ in range(count)]
        with psycopg.connect(database_url) as conn:
            conn.execute(
                "INSERT INTO attempts (id, application_id, event_id, subscription_id, status,"
                " elapsed_ms, finished_at)"
                " SELECT id, %s, %s, %s, %s, %s, now() FROM unnest(%s::uuid[]) AS id",
                (tenant.id, event_id, sub["id"], status, elapsed_ms, ids),
            )

    insert("succeeded", 50, 999)  # older than the last 100: not counted
    insert("succeeded", 30, 20)
    insert("succeeded", 10, 40)
    insert("failed", 40)
    insert("gave_up", 20)
    insert("in_flight", 5)
    recent = tenant.get(f"/subscriptions/{sub['id']}").json()["health"]["recent"]
    assert recent == {"attempts": 100, "success_rate": 0.4, "p50_ms": 20}
    assert tenant.get(f"/subscriptions/{other['id']}").json()["health"] == HEALTHY
    listed = {s["id"]: s["health"]["recent"] for s in tenant.get("/subscriptions").json()["data"]}
    assert listed[sub["id"]] == recent and listed[other["id"]]["attempts"] == 0


def attempt_keys(database_url: str, sub_id: str) -> list[tuple[str, str | None]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT a.status::text, a.ordering_key FROM attempts a WHERE a.subscription_id = %s"
            " ORDER BY a.id",
            (sub_id,),
        ).fetchall()
    return rows


def test_switching_to_per_key_gives_unfinished_attempts_their_event_key(tenant, database_url):
    tenant.event_type("order.created")
    tenant.event_type("order.paid")
    sub = tenant.subscription()
    bystander = tenant.subscription()
    tenant.send("order.created", ordering_key="order-1")
    tenant.send("order.paid")  # its key is its type
    tenant.send("order.created", ordering_key="order-2")
    tenant.send("order.created", ordering_key="order-3")
    with psycopg.connect(database_url) as conn:
        ids = [
            row[0]
            for row in conn.execute(
                "SELECT id FROM attempts WHERE subscription_id = %s ORDER BY id", (sub["id"],)
            )
        ]
        conn.execute("UPDATE attempts SET status = 'in_flight' WHERE id = %s", (ids[2],))
        conn.execute(
            "UPDATE attempts SET status = 'succeeded', finished_at = now() WHERE id = %s",
            (ids[3],),
        )
    assert [key for _, key in attempt_keys(database_url, sub["id"])] == [None] * 4

    assert tenant.patch(f"/subscriptions/{sub['id']}", {"ordering": "per_key"}).status_code == 200
    assert attempt_keys(database_url, sub["id"]) == [
        ("pending", "order-1"),
        ("pending", "order.paid"),
        ("in_flight", "order-2"),
        ("succeeded", None),  # finished: left as it was
    ]
    assert [key for _, key in attempt_keys(database_url, bystander["id"])] == [None] * 4
    tenant.send("order.created", ordering_key="order-4")  # fanned out with its key now
    assert attempt_keys(database_url, sub["id"])[-1] == ("pending", "order-4")
    assert attempt_keys(database_url, bystander["id"])[-1] == ("pending", None)

    assert tenant.patch(f"/subscriptions/{sub['id']}", {"ordering": "none"}).status_code == 200
    assert [key for _, key in attempt_keys(database_url, sub["id"])] == [None] * 5


def test_operational_event_types_may_be_subscribed_to(tenant):
    from hookpost.operational import OPERATIONAL_EVENT_TYPES

    sub = tenant.subscription(event_types=["*", *OPERATIONAL_EVENT_TYPES])
    assert sorted(sub["event_types"]) == sorted(["*", *OPERATIONAL_EVENT_TYPES])
    assert set(OPERATIONAL_EVENT_TYPES) == {
        "hookpost.subscription.disabled",
        "hookpost.circuit.opened",
        "hookpost.attempt.gave_up",
    }
    patched = tenant.patch(
        f"/subscriptions/{sub['id']}", {"event_types": ["hookpost.circuit.opened"]}
    )
    assert patched.status_code == 200 and patched.json()["event_types"] == [
        "hookpost.circuit.opened"
    ]


@pytest.mark.parametrize(
    "name", ["hookpost.other", "hookpost.circuit", "hookpost.circuit.opened.x"]
)
def test_other_hookpost_names_are_refused_in_subscriptions(tenant, name):
    response = tenant.post(
        "/subscriptions", {"url": "http://127.0.0.1:9/", "event_types": ["a.b", name]}
    )
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["field"] == "event_types[1]" and "reserved" in error["message"]
    sub = tenant.subscription()
    patched = tenant.patch(f"/subscriptions/{sub['id']}", {"event_types": [name]})
    assert patched.status_code == 422
    assert patched.json()["errors"][0]["field"] == "event_types[0]"


def test_an_ordering_change_caught_in_a_deadlock_is_tried_again(tenant, database_url, monkeypatch):
    # A deliver copy recording an outcome holds the attempt, then wants the subscription (a
    # 410 disables it), while the PATCH holds the subscription and wants the attempt.
    tenant.event_type()
    sub = tenant.subscription()
    tenant.send(ordering_key="k")
    # PostgreSQL fails the transaction of the first waiter to look for a deadlock once the
    # cycle exists; each looks once, deadlock_timeout after it began to wait. The PATCH waits
    # first: with 3 s rather than 1, the recorder closes the cycle before the PATCH looks even
    # on a loaded machine, so the PATCH's transaction is the one that fails.
    monkeypatch.setenv("PGOPTIONS", "-c deadlock_timeout=3s")
    close_pool()  # the API connects anew, with it
    in_flight = "UPDATE attempts SET status = 'in_flight' WHERE subscription_id = %s"
    disable = "UPDATE subscriptions SET updated_at = now() WHERE id = %s"
    waiting = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND %s = ANY (pg_blocking_pids(pid))"
    )
    result: dict[str, object] = {}
    recorder_failed = 0
    deadlocks_before = deadlocks(database_url)
    try:
        with (
            psycopg.connect(database_url, autocommit=True) as watcher,
            psycopg.connect(database_url) as recorder,
        ):
            recorder.execute(in_flight, (sub["id"],))
            patch = threading.Thread(
                target=lambda: result.update(
                    response=tenant.patch(f"/subscriptions/{sub['id']}", {"ordering": "per_key"})
                )
            )
            patch.start()
            wait_for(
                lambda: watcher.execute(waiting, (recorder.info.backend_pid,)).fetchone() == (1,),
                timeout=10,
                what="the PATCH waiting for the attempt",
            )
            while True:
                try:
                    recorder.execute(disable, (sub["id"],))
                    recorder.commit()
                    break
                except psycopg.errors.DeadlockDetected:
                    # The PATCH's retry may take the subscription first and meet the recorder
                    # again; as the deliver loop does, the recorder then records anew.
                    recorder.rollback()
                    recorder_failed += 1
                    recorder.execute(in_flight, (sub["id"],))
            patch.join(10)
    finally:
        close_pool()  # not to keep the longer deadlock timeout for other tests
    assert result["response"].status_code == 200, result["response"].text
    assert attempt_keys(database_url, sub["id"]) == [("in_flight", "k")]
    # The PATCH's transaction was a deadlock's victim, and the 200 came from its retry. A
    # backend reports its statistics once idle: hence the wait.
    wait_for(
        lambda: deadlocks(database_url) - deadlocks_before - recorder_failed >= 1,
        timeout=15,
        what="the PATCH's deadlock counted",
    )


def deadlocks(database_url: str) -> int:
    """The deadlocks PostgreSQL has detected in this database so far."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()[0]
