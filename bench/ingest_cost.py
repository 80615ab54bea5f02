"""What one ingested event costs, counted rather than timed where it can be: round trips, the
handler's CPU as Lambda bills it, and the database's WAL bytes and backend CPU against a
minimal schema doing the same logical work (store the event, one pending attempt for its one
subscription) in the same run. `python bench/ingest_cost.py --profile` prints a cProfile of the
in-process handler instead.

Everything runs in this process: the handler is called with API Gateway proxy events (no HTTP),
with prepared statements off, as on Lambda behind RDS Proxy."""

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

import psycopg
from figures import Figure
from psycopg.rows import dict_row

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


def _environment(url: str, limits: str) -> None:
    from hookpost.config import get_settings
    from hookpost.db.pool import close_pool

    close_pool()
    os.environ.update(
        {
            "DATABASE_URL": url,
            "HOOKPOST_ADMIN_TOKEN": ADMIN_TOKEN,
            "HOOKPOST_ALLOW_PRIVATE_TARGETS": "true",
            "HOOKPOST_LIMITS": limits,
            "HOOKPOST_PREPARE_STATEMENTS": "false",
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
    )
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


@contextlib.contextmanager
def counted_round_trips() -> Iterator[list[int]]:
    """Counts, in its one-element list, the round trips psycopg makes in this process: each
    statement executed, and a BEGIN and a COMMIT per explicit transaction."""
    count = [0]
    execute, transaction = psycopg.Cursor.execute, psycopg.Connection.transaction

    def counting_execute(self: psycopg.Cursor, *args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return execute(self, *args, **kwargs)

    def counting_transaction(self: psycopg.Connection, *args: Any, **kwargs: Any) -> Any:
        count[0] += 2
        return transaction(self, *args, **kwargs)

    psycopg.Cursor.execute = counting_execute  # type: ignore[method-assign]
    psycopg.Connection.transaction = counting_transaction  # type: ignore[method-assign]
    try:
        yield count
    finally:
        psycopg.Cursor.execute = execute  # type: ignore[method-assign]
        psycopg.Connection.transaction = transaction  # type: ignore[method-assign]


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


class Backend:
    """One connection's server process: its WAL position and CPU (utime + stime from
    /proc/<pid>/stat, readable when PostgreSQL runs on this machine)."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.pid = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
        self.tick = os.sysconf("SC_CLK_TCK")

    def cpu_ms(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.tick * 1000

    def wal(self) -> int:
        query = "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn AS wal"
        return int(self.conn.execute(query).fetchone()["wal"])


def database_cost(url: str, app: str, key: str, sub: str, n: int) -> dict[str, float]:
    """WAL bytes and backend CPU ms per event: Hookpost's ingest, through the handler with its
    pool limited to one connection (so one backend does all of it), against the minimal schema's
    one statement on a connection of its own, unprepared too."""
    from hookpost.db.pool import connection

    call = handler()
    make = lambda: single_event(app, key)  # noqa: E731
    for _ in range(20):
        call(make(), _Context())
    with connection() as pooled:
        backend = Backend(pooled)
    # The handler's connection is back in the pool; with one connection it is the one used.
    wal0, cpu0 = backend.wal(), backend.cpu_ms()
    for _ in range(n):
        answer = call(make(), _Context())
        assert answer["statusCode"] == 202, answer
    wal1, cpu1 = backend.wal(), backend.cpu_ms()
    hookpost = {"wal": (wal1 - wal0) / n, "cpu": (cpu1 - cpu0) / n}
    with psycopg.connect(
        url, autocommit=True, prepare_threshold=None, row_factory=dict_row
    ) as conn:
        conn.execute(MINIMAL_SCHEMA)
        minimal = Backend(conn)
        payload = json.dumps(PAYLOAD)
        params = lambda: {"id": uuid.uuid4(), "app": app, "sub": sub, "payload": payload}  # noqa: E731
        for _ in range(20):
            conn.execute(MINIMAL_INGEST, params())
        wal0, cpu0 = minimal.wal(), minimal.cpu_ms()
        for _ in range(n):
            conn.execute(MINIMAL_INGEST, params())
        wal1, cpu1 = minimal.wal(), minimal.cpu_ms()
    return {
        "wal": hookpost["wal"],
        "cpu": hookpost["cpu"],
        "minimal_wal": (wal1 - wal0) / n,
        "minimal_cpu": (cpu1 - cpu0) / n,
    }


def figures(url: str) -> list[Figure]:
    from hookpost.db.pool import close_pool

    n = int(2000 * float(os.environ.get("BENCH_SCALE", "1"))) or 1
    os.environ["HOOKPOST_DB_POOL_SIZE"] = "1"
    _environment(url, "on")
    call = handler()
    app, key, sub = tenant(call)
    make = lambda: single_event(app, key)  # noqa: E731
    call(make(), _Context())
    with counted_round_trips() as count:
        answer = call(make(), _Context())
    assert answer["statusCode"] == 202, answer
    trips_on = count[0]
    _environment(url, "off")
    with counted_round_trips() as count:
        call(make(), _Context())
    trips_off = count[0]
    _environment(url, "on")
    cpu = handler_cpu_ms(call, make, n)
    bare = handler_cpu_ms(bare_resolver(), make, n)
    db = database_cost(url, app, key, sub, n)
    close_pool()
    return [
        Figure(
            "ingest round trips per single-event request, limits on",
            trips_on,
            "round trips",
            1,
            "one statement",
            "<= 1",
        ),
        Figure(
            "ingest round trips per single-event request, limits off",
            trips_off,
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
            "ratio <= 3",
        ),
        Figure(
            "PostgreSQL WAL bytes per event ingested",
            db["wal"],
            "bytes",
            db["minimal_wal"],
            "minimal schema, same work",
            "ratio <= 1.5",
        ),
        Figure(
            "PostgreSQL backend CPU per event ingested, unprepared",
            db["cpu"],
            "ms",
            db["minimal_cpu"],
            "minimal schema, same work, unprepared",
            "ratio <= 2",
        ),
    ]


def profile(url: str, n: int = 2000) -> None:
    import cProfile
    import pstats

    _environment(url, "on")
    call = handler()
    app, key, _ = tenant(call)
    make = lambda: single_event(app, key)  # noqa: E731
    for _ in range(50):
        call(make(), _Context())
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    for _ in range(n):
        call(make(), _Context())
    profiler.disable()
    stats = pstats.Stats(profiler)
    print(f"{stats.total_calls / n:.0f} Python calls per request")
    stats.sort_stats("cumulative").print_stats(60)


if __name__ == "__main__":
    from hookpost.db.migrate import migrate
    from hookpost.local.postgres import embedded_postgres

    with embedded_postgres(None) as url:
        migrate(url)
        if "--profile" in sys.argv:
            profile(url)
        else:
            from figures import table

            print(table(figures(url)))
