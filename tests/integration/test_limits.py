"""Rate limits: token buckets in PostgreSQL, shared by every process, answered with 429."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from hookpost.config import RateLimit
from hookpost.limits import take
from hookpost.local.gateway import wsgi_app
from support_jobs import connect
from support_process import ROOT

# Refill slow enough that no token comes back while a test runs.
NO_REFILL = "0.001"
PLENTY = {"burst": "100000", "per_s": "100000"}


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection]:
    with connect(database_url) as conn:
        conn.execute("DELETE FROM rate_limit_buckets")  # every test starts with full buckets
        yield conn


@pytest.fixture
def limits_on(env, db):
    """Turn limits on, every bucket plentiful unless a test narrows one."""

    def set_limits(**narrowed: tuple[int, float]) -> None:
        variables = {"HOOKPOST_LIMITS": "on"}
        for scope in ("global", "ip", "key"):
            burst, per_s = narrowed.get(scope, (PLENTY["burst"], PLENTY["per_s"]))
            variables[f"HOOKPOST_LIMIT_{scope.upper()}_BURST"] = str(burst)
            variables[f"HOOKPOST_LIMIT_{scope.upper()}_PER_S"] = str(per_s)
        env(**variables)

    return set_limits


def hammer(processes: list[tuple[str, str]], count: int) -> list[list[list[str]]]:
    """Run one checking process per (source IP, token), all released at once; what each
    request of each process ran into."""
    children = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "support_limits.py"), ip, token, str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for ip, token in processes
    ]
    for child in children:
        assert child.stdout.readline().strip() == "ready"
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    results = []
    for child in children:
        out, _ = child.communicate(timeout=60)
        assert child.returncode == 0
        results.append([json.loads(line) for line in out.splitlines()])
    return results


def test_two_processes_share_one_key_bucket(limits_on):
    limits_on(key=(60, NO_REFILL))

    results = hammer([("198.51.100.1", "hp_shared"), ("198.51.100.1", "hp_shared")], 100)

    outcomes = [scopes for process in results for scopes in process]
    assert len(outcomes) == 200
    assert outcomes.count([]) == 60
    assert all(scopes == ["key"] for scopes in outcomes if scopes)


def test_two_processes_share_the_global_bucket(limits_on):
    limits_on(**{"global": (50, NO_REFILL)})

    results = hammer([("198.51.100.2", "hp_one"), ("198.51.100.3", "hp_two")], 60)

    outcomes = [scopes for process in results for scopes in process]
    assert outcomes.count([]) == 50
    assert all(scopes == ["global"] for scopes in outcomes if scopes)


def test_a_refused_request_spends_no_token(db):
    shared = RateLimit(3, 0.001)
    noisy = {"global": shared, "ip:a": RateLimit(1, 0.001)}
    quiet = {"global": shared, "ip:b": RateLimit(10, 0.001)}

    assert take(db, noisy) is None
    refused = [take(db, noisy) for _ in range(5)]
    # The noisy client's refusals left the global bucket alone: the quiet one still gets in.
    assert take(db, quiet) is None
    assert take(db, quiet) is None

    assert {tuple(r.scopes) for r in refused} == {("ip",)}
    assert take(db, quiet).scopes == ["global"]


def test_tokens_come_back_at_the_refill_rate(db):
    wanted = {"global": RateLimit(1, 1)}
    assert take(db, wanted) is None
    assert take(db, wanted).retry_after_s == 1
    # A second later, without waiting one.
    db.execute("UPDATE rate_limit_buckets SET updated_at = updated_at - interval '1 second'")
    assert take(db, wanted) is None


def test_429_with_retry_after_and_a_problem(limits_on, tenant, other_tenant, api):
    limits_on(key=(2, 0.5))

    answers = [tenant.get("/event-types") for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    refused = answers[-1]
    assert refused.headers["retry-after"] == "2"
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["status"] == 429
    assert problem["type"].endswith("/rate-limited")
    assert problem["title"] == "Too Many Requests"
    assert "key" in problem["detail"]
    # Another application's key has its own bucket; a request with no token has none.
    assert other_tenant.get("/event-types").status_code == 200
    assert api.get("/v1/health").status_code == 200


def test_refused_before_any_other_work(limits_on, tenant, db):
    tenant.event_type()
    tenant.subscription()
    limits_on(key=(1, NO_REFILL))

    assert tenant.post("/events", {"event_type": "invoice.paid", "payload": {}}).status_code == 202
    refused = tenant.post("/events", {"event_type": "invoice.paid", "payload": {}})

    assert refused.status_code == 429
    stored = db.execute("SELECT count(*) AS n FROM events WHERE application_id = %s", (tenant.id,))
    assert stored.fetchone()["n"] == 1


def test_each_source_ip_has_its_bucket(limits_on, ingest_handler):
    limits_on(ip=(1, NO_REFILL))

    def client(ip: str) -> httpx.Client:
        transport = httpx.WSGITransport(app=wsgi_app(ingest_handler), remote_addr=ip)
        return httpx.Client(transport=transport, base_url="http://hookpost.test")

    with client("192.0.2.1") as first, client("192.0.2.2") as second:
        assert first.get("/v1/health").status_code == 200
        assert first.get("/v1/health").status_code == 429
        assert second.get("/v1/health").status_code == 200


def test_off_means_off(env, tenant):
    env(HOOKPOST_LIMITS="off", HOOKPOST_LIMIT_KEY_BURST="1", HOOKPOST_LIMIT_KEY_PER_S=NO_REFILL)
    assert {tenant.get("/event-types").status_code for _ in range(3)} == {200}


def test_without_a_database_the_request_goes_on_to_its_503(limits_on, api, env):
    from hookpost.db.pool import close_pool

    limits_on()
    close_pool()
    env(
        DATABASE_URL="postgresql://nobody@/none?host=/nonexistent-socket-dir",
        HOOKPOST_DB_CONNECT_TIMEOUT_S="0.2",
    )
    try:
        health = api.get("/v1/health")
    finally:
        close_pool()
    assert health.status_code == 503
    assert health.json()["database"] == "unavailable"
