"""What one ingested event costs, counted rather than timed where it can be: round trips, the
handler's CPU as Lambda bills it, and the database's WAL bytes and backend CPU against a
minimal schema doing the same logical work (store the event, one pending attempt for its one
subscription) in the same run. `python bench/ingest_cost.py` prints these figures alone;
`--profile` prints a cProfile of the in-process handler instead (`--profile --batch`: of batches
of 500 events).

Everything runs in this process: the handler is called with API Gateway proxy events (no HTTP),
with prepared statements off, as on Lambda behind RDS Proxy; the round trips, WAL and backend
CPU are measured with bench/costs.py's pieces."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import costs
import psycopg
from figures import Figure

ROOT = Path(__file__).resolve().parents[1]
PAYLOAD = {"invoice": "inv_1001", "amount": 4200, "currency": "EUR", "note": "x" * 200}
ADMIN_TOKEN = "bench-admin-" + uuid.uuid4().hex

# The same logical work as one ingest, on tables with only what it needs: the event, and one
# pending attempt for the one subscription, in one statement.
MINIMAL_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS minimal;
CREATE TABLE IF NOT EXISTS minimal.events (
    id uuid PRIMARY KEY, application_id uuid NOT NULL, event_type text NOT NULL,
    payload jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS minimal.attempts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, event_id uuid NOT NULL,
    subscription_id uuid NOT NULL, status smallint NOT NULL DEFAULT 0,
    due_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX IF NOT EXISTS minimal_attempts_due ON minimal.attempts (subscription_id, due_at)
    WHERE status = 0;
"""
MINIMAL_INGEST = """
WITH e AS (INSERT INTO minimal.events (id, application_id, event_type, payload)
           VALUES (%(id)s, %(app)s, 'b.e', %(payload)s) RETURNING id)
INSERT INTO minimal.attempts (event_id, subscription_id) SELECT e.id, %(sub)s FROM e
"""


# The application_name of the handler's pooled connections, and of the minimal schema's: each
# side's backend CPU is read from the backends so named (costs.backend_cpu_ms).
HANDLER_NAME = "bench-ingest-" + uuid.uuid4().hex[:8]
MINIMAL_NAME = "bench-ingest-minimal-" + uuid.uuid4().hex[:8]


@contextlib.contextmanager
def settings(url: str, limits: str) -> Iterator[None]:
    """The handler's settings in this process (as on Lambda: statements unprepared), with a
    fresh pool; the environment as it was afterwards, for the figures that follow."""
    from hookpost.config import get_settings
    from hookpost.db.pool import close_pool

    saved = dict(os.environ)
    close_pool()
    os.environ.update(
        {
            "DATABASE_URL": url,
            "PGAPPNAME": HANDLER_NAME,
            "HOOKPOST_ADMIN_TOKEN": ADMIN_TOKEN,
            "HOOKPOST_ALLOW_PRIVATE_TARGETS": "true",
            "HOOKPOST_LIMITS": limits,
            "HOOKPOST_PREPARE_STATEMENTS": "false",
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
    )
    get_settings.cache_clear()
    try:
        yield
    finally:
        close_pool()
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()


def proxy_event(method: str, path: str, token: str, body: Any = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": path,
            "stage": "bench",
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": "198.51.100.7"},
        },
        "body": None if body is None else json.dumps(body),
        "isBase64Encoded": False,
    }


class _Context:
    function_name = "ingest"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:eu-west-1:000000000000:function:ingest"
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def handler() -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    from hookpost.local.gateway import load_handler

    return load_handler(ROOT / "functions" / "ingest" / "app.py")


def tenant(call: Callable[[dict[str, Any], Any], dict[str, Any]]) -> tuple[str, str, str]:
    """An application, its key and the id of its one subscription (event type b.e)."""

    def ok(method: str, path: str, token: str, body: Any) -> dict[str, Any]:
        answer = call(proxy_event(method, path, token, body), _Context())
        assert answer["statusCode"] < 300, answer
        return json.loads(answer["body"])

    app = ok("POST", "/v1/applications", ADMIN_TOKEN, {"name": "cost"})["id"]
    key = ok("POST", f"/v1/applications/{app}/api-keys", ADMIN_TOKEN, {"name": "k"})["key"]
    ok("POST", f"/v1/applications/{app}/event-types", key, {"name": "b.e"})
    body = {"url": "http://127.0.0.1:9/", "event_types": ["*"]}
    sub = ok("POST", f"/v1/applications/{app}/subscriptions", key, body)["id"]
    return app, key, sub


def single_event(app: str, key: str) -> dict[str, Any]:
    body = {"event_type": "b.e", "payload": PAYLOAD}
    return proxy_event("POST", f"/v1/applications/{app}/events", key, body)


def event_batch(app: str, key: str, n: int = 500) -> dict[str, Any]:
    body = {"events": [{"event_type": "b.e", "payload": PAYLOAD}] * n}
    return proxy_event("POST", f"/v1/applications/{app}/events/batch", key, body)


def handler_cpu_ms(
    call: Callable[[dict[str, Any], Any], dict[str, Any]], make: Callable[[], dict], n: int
) -> float:
    """CPU time of this process per call (the handler's Python and libpq, not the database's)."""
    for _ in range(20):
        call(make(), _Context())
    started = time.process_time()
    for _ in range(n):
        call(make(), _Context())
    return (time.process_time() - started) / n * 1000


def bare_resolver() -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """Powertools' resolver answering one trivial route: the floor any handler built on it pays."""
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver

    resolver = APIGatewayRestResolver()

    @resolver.post("/v1/applications/<app_id>/events")
    def accepted(app_id: str) -> tuple[dict[str, str], int]:
        return {"id": app_id}, 202

    return resolver.resolve


def database_cost(url: str, app: str, key: str, sub: str, n: int) -> dict[str, Any]:
    """WAL bytes (in total and by relation) and backend CPU ms per event: Hookpost's ingest
    through the handler, against the minimal schema's one statement, unprepared too."""
    call = handler()
    for _ in range(20):
        call(single_event(app, key), _Context())
    with psycopg.connect(url, autocommit=True) as admin:
        start, cpu = costs.wal_lsn(admin), costs.backend_cpu_ms(admin, HANDLER_NAME)
        for _ in range(n):
            answer = call(single_event(app, key), _Context())
            assert answer["statusCode"] == 202, answer
        cpu = costs.backend_cpu_ms(admin, HANDLER_NAME) - cpu
        end = costs.wal_lsn(admin)
        ours = {
            "wal": costs.wal_bytes(admin, start, end) / n,
            "cpu": cpu / n,
            "by_relation": costs.wal_by_relation(admin, start, end),
        }
        with psycopg.connect(
            url, autocommit=True, prepare_threshold=None, application_name=MINIMAL_NAME
        ) as conn:
            conn.execute(MINIMAL_SCHEMA)
            payload = json.dumps(PAYLOAD)

            def params() -> dict[str, Any]:
                return {"id": uuid.uuid4(), "app": app, "sub": sub, "payload": payload}

            for _ in range(20):
                conn.execute(MINIMAL_INGEST, params())
            start, cpu = costs.wal_lsn(admin), costs.backend_cpu_ms(admin, MINIMAL_NAME)
            for _ in range(n):
                conn.execute(MINIMAL_INGEST, params())
            cpu = costs.backend_cpu_ms(admin, MINIMAL_NAME) - cpu
            end = costs.wal_lsn(admin)
        minimal = {
            "wal": costs.wal_bytes(admin, start, end) / n,
            "cpu": cpu / n,
            "by_relation": costs.wal_by_relation(admin, start, end),
        }
    return {"hookpost": ours, "minimal": minimal}


def figures(url: str) -> list[Figure]:
    """Round trips per single-event request (through costs' counting proxy, limits on and off),
    the handler's CPU per request against the bare resolver's, and the database's cost per
    event against the minimal schema's; WAL by relation is logged."""
    n = max(1, int(2000 * float(os.environ.get("BENCH_SCALE", "1"))))
    trips = {}
    with costs.RoundTripProxy(url) as proxy:
        for limits in ("on", "off"):
            with settings(proxy.url(url), limits):
                call = handler()
                app, key, _ = tenant(call)
                for _ in range(5):
                    call(single_event(app, key), _Context())
                before = proxy.trips
                for _ in range(100):
                    answer = call(single_event(app, key), _Context())
                    assert answer["statusCode"] == 202, answer
                trips[limits] = (proxy.trips - before) / 100
    with settings(url, "on"):
        call = handler()
        app, key, sub = tenant(call)
        cpu = handler_cpu_ms(call, lambda: single_event(app, key), n)
        bare = handler_cpu_ms(bare_resolver(), lambda: single_event(app, key), n)
        db = database_cost(url, app, key, sub, n)
    ours, minimal = db["hookpost"], db["minimal"]
    print(
        "[bench] WAL bytes per event ingested, by relation (Hookpost / minimal):", file=sys.stderr
    )
    relations = ours["by_relation"].keys() | minimal["by_relation"].keys()
    for relation in sorted(relations, key=lambda r: -ours["by_relation"].get(r, 0)):
        print(
            f"[bench]   {relation}: {ours['by_relation'].get(relation, 0) / n:,.0f}"
            f" / {minimal['by_relation'].get(relation, 0) / n:,.0f}",
            file=sys.stderr,
        )
    return [
        Figure(
            "round trips per single-event ingest, limits on",
            trips["on"],
            "round trips",
            1,
            "one statement",
            "<= 1",
        ),
        Figure(
            "round trips per single-event ingest, limits off",
            trips["off"],
            "round trips",
            1,
            "one statement",
            "<= 1",
        ),
        Figure(
            "ingest handler CPU per single-event request, in-process",
            cpu,
            "ms",
            bare,
            "bare powertools resolver, trivial route",
            "<= 0.5",
        ),
        Figure(
            "WAL bytes per event ingested",
            ours["wal"],
            "bytes",
            minimal["wal"],
            "minimal schema, same work",
            "ratio <= 1.5",
        ),
        Figure(
            "PostgreSQL backend CPU per event ingested, unprepared",
            ours["cpu"],
            "ms",
            minimal["cpu"],
            "minimal schema, same work, unprepared",
            "ratio <= 2",
        ),
    ]


def profile(url: str, batch: bool = False) -> None:
    import cProfile
    import pstats

    n = 100 if batch else 2000
    with settings(url, "on"):
        call = handler()
        app, key, _ = tenant(call)

        def request() -> dict[str, Any]:
            return event_batch(app, key) if batch else single_event(app, key)

        for _ in range(5 if batch else 50):
            call(request(), _Context())
        requests = [request() for _ in range(n)]
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        for event in requests:
            call(event, _Context())
        profiler.disable()
    stats = pstats.Stats(profiler)
    print(f"{stats.total_calls / n:.0f} Python calls per request")
    stats.sort_stats("tottime").print_stats(40)


if __name__ == "__main__":
    from figures import table

    from hookpost.db.migrate import migrate
    from hookpost.local.postgres import embedded_postgres

    with embedded_postgres(None) as url:
        migrate(url)
        if "--profile" in sys.argv:
            profile(url, batch="--batch" in sys.argv)
        else:
            print(table(figures(url)))
