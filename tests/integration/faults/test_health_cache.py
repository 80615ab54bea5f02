"""/v1/health as a monitor polls it: without credentials from what the process knows (at most a
query a second), with the admin token checked live."""

from __future__ import annotations

import time

from hookpost.api.routes.health import HEALTH_MAX_AGE_S
from hookpost.db.pool import close_pool, get_pool
from support import ADMIN


def pool_requests() -> int:
    """How many connections this process's pool has handed out."""
    return get_pool().get_stats()["requests_num"]


def test_anonymous_health_queries_at_most_once_a_second_and_the_admin_checks_live(api):
    close_pool()
    assert api.get("/v1/health").status_code == 200
    before, started = pool_requests(), time.monotonic()
    for _ in range(50):
        response = api.get("/v1/health")
        assert response.json() == {"status": "ok", "database": "ok"}
    elapsed = time.monotonic() - started
    # Rate limits are off in the tests: nothing else takes a connection.
    assert pool_requests() - before <= 1 + elapsed / HEALTH_MAX_AGE_S

    before = pool_requests()
    for _ in range(5):
        assert api.get("/v1/health", headers=ADMIN).status_code == 200
    assert pool_requests() - before == 5
