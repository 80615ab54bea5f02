"""`make bench`: every figure of CONTRACT section 6, each against a baseline measured in the
same run on this machine, printed as one table and written to bench/results.json.

BENCH_SCALE (default 1) multiplies the amount of work; DATABASE_URL points at an existing
PostgreSQL instead of a throw-away embedded one; `--only NAME` runs one group of figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import aiohttp
import costs
import httpx
import ingest_cost
import psycopg
from figures import Figure, percentile, table

from hookpost.db.migrate import migrate
from hookpost.local.postgres import embedded_postgres

ROOT = Path(__file__).resolve().parents[1]
SCALE = float(os.environ.get("BENCH_SCALE", "1"))
ADMIN_TOKEN = "bench-admin-" + uuid.uuid4().hex
PAYLOAD = {"invoice": "inv_1001", "amount": 4200, "currency": "EUR", "note": "x" * 200}


def scaled(n: int) -> int:
    return max(1, int(n * SCALE))


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# Processes


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise TimeoutError(what)


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen]:
    # Output goes to a file: an unread pipe fills up and stalls the child.
    log_file = (ROOT / "bench" / "logs").open("a")
    child = subprocess.Popen(
        args, cwd=ROOT, env={**os.environ, **env}, stdout=log_file, stderr=log_file
    )
    try:
        yield child
    finally:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
        log_file.close()


@contextlib.contextmanager
def hookpost(command: str, url: str, *, limits: str) -> Iterator[str]:
    """`hookpost dev` or `hookpost api` on a port of its own; yields its base URL once healthy."""
    port = free_port()
    env = {
        "DATABASE_URL": url,
        "HOOKPOST_PORT": str(port),
        "HOOKPOST_ADMIN_TOKEN": ADMIN_TOKEN,
        "HOOKPOST_ALLOW_PRIVATE_TARGETS": "true",
        "HOOKPOST_LIMITS": limits,
    }
    base = f"http://127.0.0.1:{port}"
    with process([sys.executable, "-m", "hookpost.cli", command], env):
        wait_for(http_ok(f"{base}/v1/health"), 60, f"hookpost {command}")
        yield base


def http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code < 500
        except httpx.TransportError:
            return False

    return check


def peak_rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident set size of a process, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


# Setup through the API


def tenant(
    api: str, receiver_url: str, filters: list[str | None] | None = None
) -> tuple[str, dict[str, str]]:
    """An application with a key, the event type b.e, and one subscription to the receiver for
    each of `filters` (one without a filter by default)."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    app = httpx.post(f"{api}/v1/applications", headers=admin, json={"name": "bench"}).json()["id"]
    key = httpx.post(f"{api}/v1/applications/{app}/api-keys", headers=admin, json={"name": "b"})
    headers = {"Authorization": f"Bearer {key.json()['key']}"}
    httpx.post(f"{api}/v1/applications/{app}/event-types", headers=headers, json={"name": "b.e"})
    for path_filter in filters or [None]:
        body = {"url": receiver_url, "event_types": ["*"], "filter": path_filter}
        made = httpx.post(f"{api}/v1/applications/{app}/subscriptions", headers=headers, json=body)
        assert made.status_code == 201, made.text
    return app, headers


# Figures


def post_single(
    api: str, app: str, headers: dict[str, str], total: int, concurrency: int
) -> tuple[float, list[float]]:
    """POST `total` single events, `concurrency` at a time; events/s and each latency in ms."""
    latencies: list[float] = []

    async def run() -> float:
        async with aiohttp.ClientSession(headers=headers) as session:
            sent = 0

            async def worker() -> None:
                nonlocal sent
                while sent < total:
                    sent += 1
                    body = {"event_type": "b.e", "payload": PAYLOAD}
                    started = time.perf_counter()
                    async with session.post(f"{api}/v1/applications/{app}/events", json=body) as r:
                        await r.read()
                        assert r.status == 202, r.status
                    latencies.append((time.perf_counter() - started) * 1000)

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return total / (time.perf_counter() - started)

    return asyncio.run(run()), latencies


def ingest_single(api: str, app: str, headers: dict[str, str], url: str) -> list[Figure]:
    total, concurrency = scaled(3000), 32
    rate, latencies = post_single(api, app, headers, total, concurrency)
    baseline = insert_rate(url, app, total, concurrency)
    return [
        Figure(
            "ingest, 1 event/request, HTTP, limits on",
            rate,
            "events/s",
            baseline,
            "single-row INSERTs, same concurrency",
            ">= 2000; ratio >= 0.5",
        ),
        Figure(
            "ingest, 1 event/request: p50 latency",
            percentile(latencies, 50),
            "ms",
            None,
            "",
            "<= 20",
        ),
        Figure(
            "ingest, 1 event/request: p99 latency",
            percentile(latencies, 99),
            "ms",
            None,
            "",
            "<= 20",
        ),
    ]


def filtered_ingest(url: str, receiver: str) -> list[Figure]:
    """Single-event ingest to an application with 10 subscriptions that each have a filter
    (all holding for the payload, so the fan-out is the same), against one with 10 without."""
    total, concurrency = scaled(3000), 32
    filters = [f'$.amount >= {n} && $.currency == "EUR"' for n in range(10)]
    with hookpost("api", url, limits="off") as api:
        plain = tenant(api, receiver, [None] * 10)
        filtered = tenant(api, receiver, filters)
        # Alternated halves, so that neither side runs on a warmer or a fuller database.
        elapsed = {"plain": 0.0, "filtered": 0.0}
        for _ in range(2):
            for name, (app, headers) in (("plain", plain), ("filtered", filtered)):
                rate, _ = post_single(api, app, headers, total // 2, concurrency)
                elapsed[name] += (total // 2) / rate
    return [
        Figure(
            "ingest, 1 event/request, 10 filtered subscriptions",
            total // 2 * 2 / elapsed["filtered"],
            "events/s",
            total // 2 * 2 / elapsed["plain"],
            "10 subscriptions without a filter",
            "ratio >= 0.8",
        )
    ]


def event_row(app: str, i: int) -> tuple:
    return (app, f"base-{uuid.uuid4()}", "b.e", json.dumps(PAYLOAD), "{}", 0)


def insert_rate(url: str, app: str, total: int, concurrency: int) -> float:
    per_thread = total // concurrency

    def insert() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            for i in range(per_thread):
                conn.execute(
                    "INSERT INTO events (application_id, event_id, event_type, payload, labels,"
                    " occurred_at, attempts_created) VALUES (%s, %s, %s, %s, %s, now(), %s)",
                    event_row(app, i),
                )

    threads = [threading.Thread(target=insert) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return per_thread * concurrency / (time.perf_counter() - started)


def post_batches(
    api: str, app: str, headers: dict[str, str], batches: int, concurrency: int
) -> float:
    """POST `batches` batches of 500 events, `concurrency` at a time; returns events/s."""
    batch = {"events": [{"event_type": "b.e", "payload": PAYLOAD}] * 500}

    async def run() -> float:
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
            sent = 0

            async def worker() -> None:
                nonlocal sent
                while sent < batches:
                    sent += 1
                    url_ = f"{api}/v1/applications/{app}/events/batch"
                    async with session.post(url_, json=batch) as r:
                        await r.read()
                        assert r.status == 202, r.status

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return batches * 500 / (time.perf_counter() - started)

    return asyncio.run(run())


def ingest_batch(api: str, app: str, headers: dict[str, str], url: str) -> list[Figure]:
    batches = scaled(40)
    rate = post_batches(api, app, headers, batches, 2)
    rows = [event_row(app, i) for i in range(batches * 500)]
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        with (
            conn.cursor() as cursor,
            cursor.copy(
                "COPY events (application_id, event_id, event_type, payload, labels, occurred_at,"
                " attempts_created) FROM STDIN"
            ) as copy,
        ):
            for row in rows:
                copy.write_row((*row[:5], "now", row[5]))
        baseline = len(rows) / (time.perf_counter() - started)
    return [
        Figure(
            "ingest, batches of 500, HTTP",
            rate,
            "events/s",
            baseline,
            "COPY of the same rows",
            ">= 30000; ratio >= 0.6",
        )
    ]


def token_bucket_cost(url: str) -> Figure:
    from hookpost.config import get_settings
    from hookpost.db import queries
    from hookpost.db.run import fetch_one
    from hookpost.limits import check

    os.environ["DATABASE_URL"] = url
    os.environ["HOOKPOST_LIMITS"] = "on"
    get_settings.cache_clear()
    rounds = scaled(2000)
    event = {
        "headers": {"Authorization": "Bearer hp_bench"},
        "requestContext": {"identity": {"sourceIp": "198.51.100.7"}},
    }
    for _ in range(50):
        check(event)
    started = time.perf_counter()
    for _ in range(rounds):
        check(event)
    check_ms = (time.perf_counter() - started) / rounds * 1000
    # The same path as the check: a pooled connection per call, then one statement.
    started = time.perf_counter()
    for _ in range(rounds):
        fetch_one(queries.HEALTH_CHECK)
    select_ms = (time.perf_counter() - started) / rounds * 1000
    return Figure(
        "token-bucket check per request",
        check_ms,
        "ms",
        select_ms,
        "SELECT 1 round trip",
        "ratio <= 2",
    )


def claim_latency(url: str) -> list[Figure]:
    from hookpost.delivery.claims import claim

    backlog = scaled(1_000_000)
    with psycopg.connect(url, autocommit=True) as conn:
        app = conn.execute(
            "INSERT INTO applications (name) VALUES ('claims') RETURNING id"
        ).fetchone()[0]
        sub = conn.execute(
            "INSERT INTO subscriptions (application_id, url, event_types, secret)"
            " VALUES (%s, 'http://127.0.0.1:9/', '{*}', %s) RETURNING id",
            (app, "whsec_" + "A" * 44),
        ).fetchone()[0]
        event = conn.execute(
            "INSERT INTO events (application_id, event_id, event_type, payload, occurred_at,"
            " attempts_created) VALUES (%s, 'e', 'b.e', '{}', now(), 0) RETURNING id",
            (app,),
        ).fetchone()[0]
        log(f"seeding {backlog:,} pending attempts")
        conn.execute(
            "INSERT INTO attempts (application_id, event_id, subscription_id, due_at)"
            " SELECT %s, %s, %s, now() - interval '1 day' + i * interval '1 ms'"
            " FROM generate_series(1, %s) i",
            (app, event, sub, backlog),
        )
        conn.execute("VACUUM ANALYZE attempts")

    from psycopg.rows import dict_row

    claims, selects = [], []
    rounds = scaled(2000)
    # The read a claim cannot do without: the subscription's next due attempts, in due order.
    select_only = (
        "SELECT id FROM attempts WHERE subscription_id = %s AND status = 'pending'"
        " AND due_at <= now() ORDER BY due_at LIMIT 100"
    )
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        for _ in range(rounds):
            started = time.perf_counter()
            conn.execute(select_only, (sub,)).fetchall()
            selects.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            claim(conn, uuid.uuid4(), 100, 60.0)
            claims.append((time.perf_counter() - started) * 1000)
        conn.execute("DELETE FROM applications WHERE id = %s", (app,))
    tenth = max(1, rounds // 10)
    early, late = percentile(claims[:tenth], 99), percentile(claims[-tenth:], 99)
    return [
        Figure(
            f"claim 100 of {backlog:,} pending: p99",
            percentile(claims, 99),
            "ms",
            percentile(selects, 99),
            "same SELECT, no lock/update",
            "<= 10",
        ),
        Figure(
            f"claim p99 after draining {rounds * 100:,} vs at start",
            late / early,
            "x",
            None,
            "",
            "<= 2",
        ),
    ]


def wire_rate(receiver: str, total: int, concurrency: int) -> float:
    async def run() -> float:
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            sent = 0
            body = json.dumps({"type": "b.e", "timestamp": "now", "data": PAYLOAD}).encode()

            async def worker() -> None:
                nonlocal sent
                while sent < total:
                    sent += 1
                    async with session.post(receiver, data=body) as r:
                        await r.read()

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return total / (time.perf_counter() - started)

    return asyncio.run(run())


def seed_attempts(url: str, receiver: str, count: int, batch: int | None = None) -> str:
    """`count` due attempts to a new subscription (sending `batch` events a POST, if given);
    returns the subscription's id."""
    with psycopg.connect(url, autocommit=True) as conn:
        app = conn.execute("INSERT INTO applications (name) VALUES ('d') RETURNING id")
        app = app.fetchone()[0]
        sub = conn.execute(
            "INSERT INTO subscriptions (application_id, url, event_types, secret,"
            " batch_max_events, batch_max_wait_ms)"
            " VALUES (%s, %s, '{*}', %s, %s, CASE WHEN %s::integer IS NOT NULL THEN 0 END)"
            " RETURNING id",
            (app, receiver, "whsec_" + "A" * 44, batch, batch),
        ).fetchone()[0]
        conn.execute(
            "WITH e AS (INSERT INTO events (application_id, event_id, event_type, payload,"
            " occurred_at, attempts_created) SELECT %(app)s, 'd' || i, 'b.e', %(payload)s, now(), 1"
            " FROM generate_series(1, %(n)s) i RETURNING id)"
            " INSERT INTO attempts (application_id, event_id, subscription_id)"
            " SELECT %(app)s, e.id, %(sub)s FROM e",
            {"app": app, "sub": sub, "n": count, "payload": json.dumps(PAYLOAD)},
        )
        conn.execute("NOTIFY hookpost_attempts")
    return str(sub)


def settle_leftovers(url: str) -> None:
    """Give up what earlier figures left pending (the ingest figures run no deliver loop), so
    that each delivery figure measures only its own attempts, not a backlog it inherited."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE attempts SET status = 'gave_up', finished_at = now(),"
            " error = 'left over by an earlier figure' WHERE status IN ('pending', 'in_flight')"
        )


def wait_delivered(url: str, subscription_id: str, count: int) -> None:
    """Until nothing of the subscription is left to send, then checks that `count` attempts of it
    succeeded. One connection, and each look two EXISTS through the pending and in-flight
    partial indexes: a count over the whole table on a new connection every 20 ms took a share of
    the two cores from the deliver process and PostgreSQL being measured."""
    with psycopg.connect(url, autocommit=True) as conn:
        wait_for(
            lambda: not conn.execute(queries_left, {"sub": subscription_id}).fetchone()[0],
            600,
            "deliveries",
        )
        done = conn.execute(
            "SELECT count(*) FROM attempts WHERE subscription_id = %(sub)s"
            " AND status = 'succeeded'",
            {"sub": subscription_id},
        ).fetchone()[0]
    if done != count:
        raise RuntimeError(f"{done} of {count} attempts succeeded")


queries_left = (
    "SELECT EXISTS (SELECT FROM attempts WHERE subscription_id = %(sub)s AND status = 'pending')"
    " OR EXISTS (SELECT FROM attempts WHERE subscription_id = %(sub)s"
    " AND status = 'in_flight')"
)


def deliveries(url: str, receiver: str) -> list[Figure]:
    total = scaled(20_000)
    figures = []
    settle_leftovers(url)
    for concurrency, label in ((100, "rate"), (500, "rss")):
        env = {
            "DATABASE_URL": url,
            "HOOKPOST_DELIVERY_CONCURRENCY": str(concurrency),
            "HOOKPOST_DELIVERY_BATCH_SIZE": str(max(100, concurrency)),
            "HOOKPOST_ALLOW_PRIVATE_TARGETS": "true",
        }
        with process([sys.executable, "-m", "hookpost.cli", "deliver"], env) as deliver:
            time.sleep(2)  # settle: imports, pool, LISTEN; the idle footprint is measured here
            idle_rss, _ = peak_rss_mb(deliver.pid)
            subscription = seed_attempts(url, receiver, total)
            # From the backlog's commit: seeding is not the deliver process's work.
            started = time.perf_counter()
            wait_delivered(url, subscription, total)
            elapsed = time.perf_counter() - started
            _, peak = peak_rss_mb(deliver.pid)
        if label == "rate":
            baseline = wire_rate(receiver, total, concurrency)
            figures.append(
                Figure(
                    "deliveries/s, one deliver process, 100 in flight",
                    total / elapsed,
                    "deliveries/s",
                    baseline,
                    "aiohttp wire-only, same receiver",
                    ">= 2000; ratio >= 0.5",
                )
            )
            figures.append(
                Figure(
                    "receiver ceiling (aiohttp client, 100 in flight)",
                    baseline,
                    "requests/s",
                    None,
                    "",
                    ">= 2000",
                )
            )
        else:
            figures.append(
                Figure(
                    "deliver process peak RSS, 500 in flight",
                    peak,
                    "MB",
                    idle_rss,
                    "same process idle",
                    "<= 150",
                )
            )
    return figures


def batch_deliveries(url: str, receiver: str) -> list[Figure]:
    """Events delivered per second by one deliver process when the subscription sends them in
    batches of 100, against the same process sending them one per request."""
    total = scaled(20_000)
    settle_leftovers(url)
    env = {
        "DATABASE_URL": url,
        "HOOKPOST_DELIVERY_CONCURRENCY": "100",
        "HOOKPOST_DELIVERY_BATCH_SIZE": "100",
        "HOOKPOST_ALLOW_PRIVATE_TARGETS": "true",
    }
    rates = {}
    with process([sys.executable, "-m", "hookpost.cli", "deliver"], env):
        time.sleep(2)  # settle: imports, pool, LISTEN
        for batch in (None, 100):
            subscription = seed_attempts(url, receiver, total, batch)
            started = time.perf_counter()
            wait_delivered(url, subscription, total)
            rates[batch] = total / (time.perf_counter() - started)
    return [
        Figure(
            "events delivered/s, batches of 100, one deliver process",
            rates[100],
            "events/s",
            rates[None],
            "same process, one event a request",
            ">= 20000; ratio >= 10",
        )
    ]


def send_events(
    api: str, app: str, headers: dict[str, str], rate: float, count: int
) -> dict[str, float]:
    """POST `count` single events at `rate` per second, on schedule whatever the answers take;
    returns each event's id and the unix time its 202 was read (the receiver's clock)."""
    acked: dict[str, float] = {}

    async def run() -> None:
        async with aiohttp.ClientSession(headers=headers) as session:

            async def send() -> None:
                body = {"event_type": "b.e", "payload": PAYLOAD}
                async with session.post(f"{api}/v1/applications/{app}/events", json=body) as r:
                    accepted = await r.json()
                    acked[accepted["id"]] = time.time()

            tasks = []
            started = time.perf_counter()
            for i in range(count):
                delay = started + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(send()))
            await asyncio.gather(*tasks)

    asyncio.run(run())
    return acked


def collect_arrivals(receiver_base: str, ids: Iterable[str], timeout: float) -> dict[str, float]:
    """When the receiver got each of `ids` (unix time), polling until all have arrived or
    `timeout` has passed; those that did not arrive are missing from the answer."""
    wanted = set(ids)
    arrivals: dict[str, float] = {}

    def all_arrived() -> bool:
        arrivals.update(httpx.get(f"{receiver_base}/_arrivals").json()["arrivals"])
        return wanted <= arrivals.keys()

    with contextlib.suppress(TimeoutError):
        wait_for(all_arrived, timeout, "arrivals")
    return {i: arrivals[i] for i in wanted & arrivals.keys()}


def end_to_end(url: str, receiver: str, receiver_base: str, rate: int) -> list[Figure]:
    seconds = 10 * SCALE
    settle_leftovers(url)
    with hookpost("dev", url, limits="off") as api:
        app, headers = tenant(api, receiver)
        httpx.get(f"{receiver_base}/_arrivals")
        acked = send_events(api, app, headers, rate, int(rate * seconds))
        arrivals = collect_arrivals(receiver_base, acked, 60)
        if len(arrivals) < len(acked):
            raise TimeoutError("end-to-end deliveries")
    latencies = [(arrivals[i] - t) * 1000 for i, t in acked.items()]
    round_trips = []
    with httpx.Client() as client:
        for _ in range(500):
            started = time.perf_counter()
            client.post(receiver, content=b"{}")
            round_trips.append((time.perf_counter() - started) * 1000)
    baseline = percentile(round_trips, 50)
    return [
        Figure(
            f"end-to-end 202 to receiver at {rate} events/s: p50",
            percentile(latencies, 50),
            "ms",
            baseline,
            "receiver round trip alone (p50)",
            "<= 10",
        ),
        Figure(
            f"end-to-end 202 to receiver at {rate} events/s: p99",
            percentile(latencies, 99),
            "ms",
            percentile(round_trips, 99),
            "receiver round trip alone (p99)",
            "<= 50",
        ),
    ]


# How long the fairness figure waits for the small tenant's events after its last 202: far
# beyond any claim round, far short of the backlog draining (at /slow's pace, many minutes).
FAIRNESS_WAIT_S = 30
FAIRNESS_RATE = 20


def small_tenant(
    api: str, app: str, headers: dict[str, str], receiver_base: str, count: int
) -> tuple[list[float], int]:
    """ms from each 202 to the receiver for `count` events at FAIRNESS_RATE, and how many
    arrived. An event not received within FAIRNESS_WAIT_S counts as the time waited for it, so
    with any missing the percentiles are lower bounds."""
    httpx.get(f"{receiver_base}/_arrivals")
    acked = send_events(api, app, headers, FAIRNESS_RATE, count)
    arrivals = collect_arrivals(receiver_base, acked, FAIRNESS_WAIT_S)
    gave_up = time.time()
    return [(arrivals.get(i, gave_up) - t) * 1000 for i, t in acked.items()], len(arrivals)


def pending(url: str, app: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        query = "SELECT count(*) FROM attempts WHERE application_id = %s AND status = 'pending'"
        return conn.execute(query, (app,)).fetchone()[0]


def fairness(url: str, receiver_base: str) -> list[Figure]:
    """A small tenant's end-to-end latency while a large tenant's slow endpoint has a backlog,
    against the same small tenant with no backlog, in the same system."""
    count, batches = scaled(200), scaled(200)
    backlog = batches * 500
    settle_leftovers(url)
    with hookpost("dev", url, limits="off") as api:
        small, small_headers = tenant(api, f"{receiver_base}/webhooks")
        # /slow holds each request 1 s: the deliver loop works the backlog off at about its
        # concurrency per second, so it stays (nearly) whole through the measurement.
        large, large_headers = tenant(api, f"{receiver_base}/slow")
        log(f"fairness: small tenant alone, {count} events at {FAIRNESS_RATE}/s")
        alone, arrived_alone = small_tenant(api, small, small_headers, receiver_base, count)
        log(f"fairness: {backlog:,} events for the large tenant")
        post_batches(api, large, large_headers, batches, 2)
        before = pending(url, large)
        log(f"fairness: small tenant beside {before:,} pending")
        beside, arrived = small_tenant(api, small, small_headers, receiver_base, count)
        log(f"fairness: {arrived} of {count} arrived; {pending(url, large):,} still pending")
    # Later figures must not deliver (or claim past) what is left of the backlog.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM applications WHERE id = ANY(%s)", ([small, large],))
    name = f"fairness: 202 to receiver beside a {backlog:,} backlog"
    goal = "value - baseline <= 250"  # within one claim round of the small tenant alone
    return [
        Figure(
            f"{name}: p50",
            percentile(beside, 50),
            "ms",
            percentile(alone, 50),
            "no backlog (p50)",
            goal,
        ),
        Figure(
            f"{name}: p99",
            percentile(beside, 99),
            "ms",
            percentile(alone, 99),
            "no backlog (p99)",
            goal,
        ),
        # With any missing, the two rows above are lower bounds.
        Figure(
            f"{name}: received within {FAIRNESS_WAIT_S} s",
            100 * arrived / count,
            "%",
            100 * arrived_alone / count,
            "no backlog",
            ">= 100",
        ),
    ]


def ingest(url: str, receiver: str) -> list[Figure]:
    with hookpost("api", url, limits="on") as api:
        app, headers = tenant(api, receiver)
        log("ingest: one event per request")
        figures = ingest_single(api, app, headers, url)
        log("ingest: batches")
        figures += ingest_batch(api, app, headers, url)
    return figures


def outage(receiver: str) -> list[Figure]:
    """How long a client waits for its 503 while the database is down: `hookpost api` against a
    PostgreSQL of its own, stopped once the API serves. Baseline: the same request, database up."""
    import shutil
    import tempfile
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        import pgserver

    total = scaled(400)
    parent = Path(tempfile.mkdtemp(prefix="hookpost-bench-outage-"))
    os.chmod(parent, 0o755)  # as root, pgserver runs postgres as a user of its own
    server = pgserver.get_server(parent / "data", cleanup_mode="stop")
    running = True
    try:
        url = server.get_uri()
        migrate(url)
        with hookpost("api", url, limits="on") as api, httpx.Client(timeout=30) as client:
            app, headers = tenant(api, receiver)
            events = f"{api}/v1/applications/{app}/events"
            body = {"event_type": "b.e", "payload": PAYLOAD}

            def timed_ms(status: int) -> float:
                started = time.perf_counter()
                response = client.post(events, headers=headers, json=body)
                assert response.status_code == status, response.status_code
                return (time.perf_counter() - started) * 1000

            up = [timed_ms(202) for _ in range(total)]
            server.cleanup()
            running = False
            # Each API process finds it out on its first request; these are measured too.
            down = [timed_ms(503) for _ in range(total)]
    finally:
        if running:
            server.cleanup()
        shutil.rmtree(parent, ignore_errors=True)
    return [
        Figure(
            "503 during an outage, p99",
            percentile(down, 99),
            "ms",
            percentile(up, 99),
            "202 with the database up, p99",
            "<= 100",
        )
    ]


def delivery_cost(url: str, receiver: str) -> list[Figure]:
    """Round trips, WAL bytes and backend CPU per attempt delivered by one deliver process with
    statements unprepared (as on Lambda), against the minimal schema leasing and recording the
    same number of attempts 100 at a time (bench/costs.py)."""
    total = scaled(10_000)
    settle_leftovers(url)
    subscription = seed_attempts(url, receiver, total)
    name = "bench-deliver-" + uuid.uuid4().hex[:8]
    with (
        costs.RoundTripProxy(url) as proxy,
        costs.autovacuum_off(url, ["attempts", "subscription_state", "subscription_health"]),
        psycopg.connect(url, autocommit=True) as admin,
    ):
        admin.execute("VACUUM ANALYZE attempts")
        env = {
            "DATABASE_URL": proxy.url(url),
            "PGAPPNAME": name,
            "HOOKPOST_PREPARE_STATEMENTS": "false",
            "HOOKPOST_DELIVERY_CONCURRENCY": "100",
            "HOOKPOST_DELIVERY_BATCH_SIZE": "100",
            "HOOKPOST_ALLOW_PRIVATE_TARGETS": "true",
        }
        start, trips = costs.wal_lsn(admin), proxy.trips
        with process([sys.executable, "-m", "hookpost.cli", "deliver"], env):
            wait_delivered(url, subscription, total)
            cpu = costs.backend_cpu_ms(admin, name)
            trips = proxy.trips - trips
            end = costs.wal_lsn(admin)
        wal = costs.wal_bytes(admin, start, end)
        by_relation = costs.wal_by_relation(admin, start, end)
        body = admin.execute(
            "SELECT response_body FROM attempts WHERE status = 'succeeded'"
            " ORDER BY finished_at DESC LIMIT 1"
        ).fetchone()[0]
        minimal = costs.run_minimal(url, proxy, total, body)
    log("WAL bytes per attempt delivered, by relation (Hookpost / minimal):")
    for relation in sorted(
        by_relation.keys() | minimal["by_relation"].keys(),
        key=lambda r: -by_relation.get(r, 0),
    ):
        ours = by_relation.get(relation, 0) / total
        log(f"  {relation}: {ours:,.0f} / {minimal['by_relation'].get(relation, 0):,.0f}")
    return [
        Figure(
            "round trips per attempt delivered (claim + record over the batch)",
            trips / total,
            "round trips",
            minimal["round_trips"],
            "minimal: lease 100, record 100",
            "ratio <= 2",
        ),
        Figure(
            "WAL bytes per attempt delivered",
            wal / total,
            "bytes",
            minimal["wal"],
            "minimal schema, same work",
            "ratio <= 1.5",
        ),
        Figure(
            "PostgreSQL backend CPU per attempt delivered, unprepared",
            cpu / total,
            "ms",
            minimal["cpu_ms"],
            "minimal schema, same work",
            "ratio <= 2",
        ),
    ]


@contextlib.contextmanager
def database() -> Iterator[str]:
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    with embedded_postgres(None) as url:
        yield url


# Each group of figures, in the order the suite runs them, from the database URL and the
# receiver's base URL (its fast path is /webhooks). Fairness runs last: it loads the system most.
FIGURES: dict[str, Callable[[str, str], list[Figure]]] = {
    "ingest": lambda url, base: ingest(url, f"{base}/webhooks"),
    "token-bucket": lambda url, base: [token_bucket_cost(url)],
    "ingest-cost": lambda url, base: ingest_cost.figures(url),
    "deliveries": lambda url, base: deliveries(url, f"{base}/webhooks"),
    # The contract's rate, and a lighter one: what latency is when the 2 cores are not
    # saturated by ingest itself.
    "end-to-end": lambda url, base: (
        end_to_end(url, f"{base}/webhooks", base, 500)
        + end_to_end(url, f"{base}/webhooks", base, 100)
    ),
    "claims": lambda url, base: claim_latency(url),
    "filtered-ingest": lambda url, base: filtered_ingest(url, f"{base}/webhooks"),
    "batch-deliveries": lambda url, base: batch_deliveries(url, f"{base}/webhooks"),
    "delivery-cost": lambda url, base: delivery_cost(url, f"{base}/webhooks"),
    "outage": lambda url, base: outage(f"{base}/webhooks"),
    "fairness": fairness,
}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="make bench: the benchmark suite")
    parser.add_argument(
        "--only",
        action="append",
        choices=FIGURES,
        metavar="NAME",
        help=f"run only this group of figures (repeatable): {', '.join(FIGURES)}; the table is"
        " printed and bench/results.json, the whole suite's, is left as it is",
    )
    return parser.parse_args()


def main() -> int:
    only = arguments().only
    # stdout is the table: the migration of each figure's database is not news (after the
    # in-process ingest figures, the handler's logger would print it there as JSON).
    logging.getLogger("hookpost.db.migrate").setLevel(logging.WARNING)
    started = time.perf_counter()
    receiver_port = free_port()
    receiver_base = f"http://127.0.0.1:{receiver_port}"
    figures: list[Figure] = []
    with (
        database() as url,
        process([sys.executable, str(ROOT / "bench" / "receiver.py"), str(receiver_port)], {}),
    ):
        migrate(url)
        wait_for(http_ok(f"{receiver_base}/_arrivals"), 10, "receiver")
        for name, measure in FIGURES.items():
            if not only or name in only:
                log(name)
                figures += measure(url, receiver_base)
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}",
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "scale": SCALE,
        "seconds": round(time.perf_counter() - started),
        "figures": [f.as_json() for f in figures],
    }
    if not only:
        (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"machine: {results['machine']}; commit {results['commit']}; scale {SCALE}")
    print(table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
