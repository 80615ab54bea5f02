"""Upgrades: a database built and filled by an earlier release, migrated by this one, keeps every
row as it was, runs this release's functions, and delivers what it held as a receiver expects."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from hookpost.db.migrate import (
    function_files,
    migrate,
    released_checksums,
    versioned_migrations,
)
from hookpost.db.pool import close_pool
from hookpost.delivery.loop import Summary, Worker
from support_delivery import Receiver

# The versioned files each release shipped. Released files never change (released.json pins
# them), so today's copies are the release's own.
RELEASES = {
    "36afc8a": (
        "0001_schema",
        "0003_stats_limits",
        "0004_attempt_expired",
        "0005_endpoint_health",
        "0006_claim_and_record",
    ),
    "1a1c04a": ("0001_schema", "0003_stats_limits"),
}

# Polling, lease recovery and timeouts at test speed.
FAST_DELIVERY = {
    "HOOKPOST_DELIVERY_POLL_S": "0.05",
    "HOOKPOST_DELIVERY_RECOVER_S": "0.2",
    "HOOKPOST_DELIVERY_TIMEOUT_S": "2",
    "HOOKPOST_DELIVERY_CONNECT_TIMEOUT_S": "1",
}


def build_as_released(url: str, release: str) -> None:
    """Reproduces the migration runner of releases up to 36afc8a: each file in a transaction of
    its own, its version recorded in their schema_migrations, which had no checksum column. The
    functions are those the files create: those releases had no function files."""
    files = {m.version: m for m in versioned_migrations()}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version in RELEASES[release]:
            with conn.transaction():
                conn.execute(files[version].sql)
                conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))


@dataclass
class Expected:
    """What a filled database must do once upgraded: the attempts to be delivered (by id, with
    the request their receiver must get), the attempts nothing may touch, each per_key key's
    events in ingest order, the attempts that end without being sent, and the subscriptions
    whose open circuit is probed."""

    deliveries: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    untouched: set[uuid.UUID] = field(default_factory=set)
    keys: dict[str, list[str]] = field(default_factory=dict)
    ended: dict[uuid.UUID, str] = field(default_factory=dict)
    probed: dict[str, uuid.UUID] = field(default_factory=dict)


class Filler:
    """Writes rows with plain SQL against a release's schema, as that release's API and deliver
    loop left them, and notes what the upgraded database must do with each."""

    def __init__(self, conn: psycopg.Connection, base_url: str) -> None:
        self.conn = conn
        self.base_url = base_url
        self.now = datetime.now(UTC)
        self.expected = Expected()
        self._events = 0
        self.app = self.insert("applications", name="shop", retention_days=30)

    def insert(self, table: str, **values: Any) -> dict[str, Any]:
        query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING *").format(
            sql.Identifier(table),
            sql.SQL(", ").join(map(sql.Identifier, values)),
            sql.SQL(", ").join(map(sql.Placeholder, values)),
        )
        params = {k: Jsonb(v) if isinstance(v, dict) else v for k, v in values.items()}
        row = self.conn.execute(query, params).fetchone()
        assert row is not None
        return row

    def subscription(self, name: str, **settings: Any) -> dict[str, Any]:
        secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
        return self.insert(
            "subscriptions",
            application_id=self.app["id"],
            url=f"{self.base_url}/{name}",
            event_types=["invoice.paid"],
            headers={"X-Team": name},
            secret=secret,
            **settings,
        )

    def event(self, **columns: Any) -> dict[str, Any]:
        self._events += 1
        n = self._events
        return self.insert(
            "events",
            application_id=self.app["id"],
            event_id=f"evt-{n}",
            event_type="invoice.paid",
            payload={"invoice": n, "lines": [{"sku": "a", "qty": n}]},
            occurred_at=datetime(2026, 11, 30, 12, 0, n, tzinfo=UTC),
            attempts_created=1,
            **columns,
        )

    def attempt(
        self, subscription: dict[str, Any], event: dict[str, Any] | None = None, **columns: Any
    ) -> dict[str, Any]:
        event = event or self.event()
        return self.insert(
            "attempts",
            application_id=self.app["id"],
            event_id=event["id"],
            subscription_id=subscription["id"],
            **columns,
        )

    def to_deliver(
        self, subscription: dict[str, Any], event: dict[str, Any] | None = None, **columns: Any
    ) -> dict[str, Any]:
        event = event or self.event()
        row = self.attempt(subscription, event, **columns)
        self.expected.deliveries[row["id"]] = {
            "path": f"/{subscription['url'].rsplit('/', 1)[1]}",
            "webhook-id": str(event["id"]),
            "secret": subscription["secret"],
            "x-team": subscription["headers"]["X-Team"],
            "payload": {
                "type": "invoice.paid",
                "timestamp": event["occurred_at"].strftime("%Y-%m-%dT%H:%M:%SZ"),
                "data": event["payload"],
            },
        }
        return row

    # Attempts in the states a deliver loop leaves behind.

    def succeeded(self, subscription: dict[str, Any], **columns: Any) -> dict[str, Any]:
        return self.attempt(
            subscription,
            status="succeeded",
            due_at=self.now - timedelta(minutes=11),
            claimed_by=uuid.uuid4(),
            started_at=self.now - timedelta(minutes=10),
            finished_at=self.now - timedelta(minutes=10),
            response_status=200,
            response_headers={"content-type": "text/plain"},
            response_body="ok",
            elapsed_ms=12,
            **columns,
        )

    def failed_with_retry_due(self, subscription: dict[str, Any]) -> None:
        event = self.event()
        self.attempt(
            subscription,
            event,
            status="failed",
            due_at=self.now - timedelta(minutes=2),
            claimed_by=uuid.uuid4(),
            started_at=self.now - timedelta(minutes=2),
            finished_at=self.now - timedelta(minutes=2),
            response_status=503,
            response_body="down for maintenance",
            elapsed_ms=40,
        )
        self.to_deliver(
            subscription, event, try_number=2, trigger="retry", due_at=self.now - timedelta(0, 1)
        )

    def open_circuit(self, subscription: dict[str, Any], probe_in: timedelta) -> None:
        self.conn.execute(
            "UPDATE subscription_health SET circuit = 'open', failure_streak = 5,"
            " opened_at = %(opened)s, probe_at = %(probe)s, cooldown_s = 30"
            " WHERE subscription_id = %(id)s",
            {
                "id": subscription["id"],
                "opened": self.now - timedelta(minutes=5),
                "probe": self.now + probe_in,
            },
        )


def fill_36afc8a(conn: psycopg.Connection, base_url: str) -> Expected:
    """Every table holds rows, and attempts are in every state the release had."""
    fill = Filler(conn, base_url)
    now = fill.now
    fill.insert(
        "api_keys",
        application_id=fill.app["id"],
        name="deploy",
        key_hash=hashlib.sha256(b"hp_upgrade").digest(),
        key_prefix="hp_upgr",
    )
    fill.insert(
        "event_types",
        application_id=fill.app["id"],
        name="invoice.paid",
        description="an invoice was paid",
        schema={"type": "object", "required": ["invoice"]},
    )
    fill.insert(
        "stats_hourly",
        application_id=fill.app["id"],
        hour=now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1),
        events=3,
        succeeded=2,
        failed=1,
        gave_up=0,
        p50_ms=12,
        p95_ms=40,
        latency_ms=[12, 40],
        latency_count=[1, 1],
    )
    fill.insert("stats_refresh", refreshed_at=now - timedelta(minutes=1))
    fill.insert(
        "rate_limit_buckets", key="global", tokens=99.0, updated_at=now, burst=100.0, per_s=50.0
    )

    plain = fill.subscription("plain", rate_limit_per_s=100.0, max_in_flight=10)
    fill.succeeded(plain)
    fill.failed_with_retry_due(plain)
    fill.to_deliver(plain, due_at=now - timedelta(seconds=1))
    lost_worker = {"claimed_by": uuid.uuid4(), "started_at": now - timedelta(minutes=2)}
    fill.to_deliver(
        plain, status="in_flight", lease_expires_at=now - timedelta(minutes=1), **lost_worker
    )
    live_worker = {"claimed_by": uuid.uuid4(), "started_at": now - timedelta(seconds=1)}
    leased = fill.attempt(
        plain, status="in_flight", lease_expires_at=now + timedelta(hours=1), **live_worker
    )
    later = fill.attempt(
        plain,
        fill.event(deliver_at=now + timedelta(hours=1)),
        due_at=now + timedelta(hours=1),
    )
    fill.attempt(
        plain,
        status="gave_up",
        try_number=4,
        trigger="retry",
        finished_at=now - timedelta(minutes=3),
        error="connection failed: refused",
    )
    fill.attempt(
        plain,
        fill.event(expires_at=now - timedelta(minutes=4)),
        status="expired",
        expires_at=now - timedelta(minutes=4),
        finished_at=now - timedelta(minutes=4),
        error="expired before it could be sent",
    )
    past_expiry = fill.attempt(
        plain,
        fill.event(expires_at=now - timedelta(seconds=1)),
        due_at=now - timedelta(minutes=1),
        expires_at=now - timedelta(seconds=1),
    )
    fill.expected.untouched |= {leased["id"], later["id"]}
    fill.expected.ended[past_expiry["id"]] = "expired"

    # A per-key backlog: each key's events go one at a time in ingest order, the first of
    # "cust-1" held by a worker that died.
    ordered = fill.subscription("ordered", ordering="per_key")
    for key in ("cust-1", "cust-2"):
        events = [fill.event(ordering_key=key) for _ in range(3)]
        events.sort(key=lambda e: e["id"])
        fill.expected.keys[key] = [str(e["id"]) for e in events]
        for place, event in enumerate(events):
            state = {"due_at": now - timedelta(seconds=1)}
            if place == 0 and key == "cust-1":
                state |= {"status": "in_flight", "lease_expires_at": now - timedelta(seconds=5)}
                state |= lost_worker
            fill.to_deliver(ordered, event, ordering_key=key, **state)

    # Open circuits: one still cooling down holds its backlog, one past its probe time sends one
    # probe, closes on its success and sends the rest.
    held = fill.subscription("held")
    fill.open_circuit(held, probe_in=timedelta(hours=1))
    for _ in range(2):
        fill.expected.untouched.add(fill.attempt(held, due_at=now - timedelta(seconds=1))["id"])
    probed = fill.subscription("probed")
    fill.open_circuit(probed, probe_in=-timedelta(seconds=1))
    for seconds in (3, 2, 1):
        fill.to_deliver(probed, due_at=now - timedelta(seconds=seconds))
    fill.expected.probed["/probed"] = probed["id"]
    return fill.expected


def fill_1a1c04a(conn: psycopg.Connection, base_url: str) -> Expected:
    """An application with a subscription: attempts pending, succeeded, failed with a retry."""
    fill = Filler(conn, base_url)
    subscription = fill.subscription("plain")
    fill.succeeded(subscription)
    fill.failed_with_retry_due(subscription)
    for seconds in (2, 1):
        fill.to_deliver(subscription, due_at=fill.now - timedelta(seconds=seconds))
    return fill.expected


FILLS: dict[str, Callable[[psycopg.Connection, str], Expected]] = {
    "36afc8a": fill_36afc8a,
    "1a1c04a": fill_1a1c04a,
}


def columns_of(url: str) -> dict[str, list[str]]:
    """Every table's columns, in order."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT c.table_name, array_agg(c.column_name::text ORDER BY c.ordinal_position)"
            " FROM information_schema.columns c JOIN information_schema.tables t"
            " USING (table_schema, table_name)"
            " WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'"
            " GROUP BY c.table_name"
        ).fetchall()
    return dict(rows)


def dump(url: str, columns: dict[str, list[str]]) -> dict[str, list[tuple[Any, ...]]]:
    """The rows of each table, as the given columns, sorted."""
    with psycopg.connect(url) as conn:
        return {
            table: conn.execute(
                sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
                    sql.SQL(", ").join(map(sql.Identifier, names)),
                    sql.Identifier(table),
                    sql.SQL(", ").join(sql.Literal(i + 1) for i in range(len(names))),
                )
            ).fetchall()
            for table, names in columns.items()
        }


def definitions(url: str) -> dict[str, str]:
    """Every function's source, view's query and trigger's definition."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT 'function ' || p.proname || '(' || pg_get_function_identity_arguments(p.oid)"
            "       || ')', p.prosrc"
            " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = 'public'"
            " UNION ALL SELECT 'view ' || viewname, definition FROM pg_views"
            " WHERE schemaname = 'public'"
            " UNION ALL SELECT 'trigger ' || tgname, pg_get_triggerdef(oid) FROM pg_trigger"
            " WHERE NOT tgisinternal"
        ).fetchall()
    return dict(rows)


def attempts(url: str) -> dict[uuid.UUID, dict[str, Any]]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return {row["id"]: row for row in conn.execute("SELECT * FROM attempts")}


def metrics_totals(url: str) -> tuple[dict[uuid.UUID, tuple[int, ...]], dict[int, int]]:
    """The running totals /v1/metrics reads: per application, and the succeeded histogram."""
    with psycopg.connect(url) as conn:
        counts = conn.execute(
            "SELECT application_id, events, succeeded, failed, gave_up FROM stats_totals"
        ).fetchall()
        keys = conn.execute("SELECT outcome, ms, n FROM stats_latency_totals").fetchall()
    assert all(outcome == "succeeded" for outcome, _, _ in keys), "no other outcome was kept"
    return {row[0]: tuple(row[1:]) for row in counts}, {ms: n for _, ms, n in keys}


def rolled_up(
    names: list[str], before: dict[str, list[tuple[Any, ...]]]
) -> tuple[dict[uuid.UUID, tuple[int, ...]], dict[int, int]]:
    """What the release's stats_hourly rows add up to, as metrics_totals reads it."""
    counts: dict[uuid.UUID, Counter[str]] = {}
    keys: Counter[int] = Counter()
    for values in before["stats_hourly"]:
        row = dict(zip(names, values, strict=True))
        counts.setdefault(row["application_id"], Counter()).update(
            {k: row[k] for k in ("events", "succeeded", "failed", "gave_up")}
        )
        for ms, n in zip(row["latency_ms"], row["latency_count"], strict=True):
            keys[ms] += n
    return {
        app: (c["events"], c["succeeded"], c["failed"], c["gave_up"]) for app, c in counts.items()
    }, dict(keys)


@pytest.fixture
def deliver_from(env) -> Iterator[Callable[[str], Summary]]:
    """Runs one deliver loop against a database of the test's own until it is idle, as a woken
    deliver Lambda does, and leaves the shared pool to reopen on the session's database."""

    def deliver(url: str) -> Summary:
        close_pool()
        env(DATABASE_URL=url, **FAST_DELIVERY)
        # One run: it is idle only once nothing is due, in flight or waiting to be recorded, so
        # an answer freeing the next of a key (or a probe's backlog) is sent in the same run.
        # In a thread of its own, as a deliver process runs it: the main thread may already
        # have an event loop of another test's (Playwright's) running.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            summary = pool.submit(asyncio.run, Worker(listen=False, until_idle=True).run()).result()
        close_pool()
        return summary

    yield deliver
    close_pool()


@pytest.mark.parametrize(
    "release",
    [
        "36afc8a",
        "1a1c04a",
    ],
)
def test_a_database_of_an_earlier_release_upgrades_and_delivers_what_it_held(
    release: str, empty_database: str, database_url: str, receiver: Receiver, deliver_from
):
    build_as_released(empty_database, release)
    release_definitions = definitions(empty_database)
    with psycopg.connect(empty_database, row_factory=dict_row) as conn:
        expected = FILLS[release](conn, f"http://127.0.0.1:{receiver.port}")
    old_columns = columns_of(empty_database)
    before = dump(empty_database, old_columns)
    if release == "36afc8a":
        assert all(before.values()), "every table holds rows"

    applied = migrate(empty_database)

    # Repairs slotted between released files (0004a, 0005a) apply late, and do nothing, on
    # databases already past them.
    assert applied == [
        m.version for m in versioned_migrations() if m.version not in RELEASES[release]
    ]
    after_migrate = dump(empty_database, old_columns)
    lost = {t: [r for r in rows if r not in after_migrate[t]] for t, rows in before.items()}
    assert not any(lost.values()), f"every row as it was: {lost}"
    added = {t: len(after_migrate[t]) - len(rows) for t, rows in before.items()}
    assert added == {t: 0 for t in before} | {"schema_migrations": len(applied)}
    with psycopg.connect(empty_database) as conn:
        assert dict(conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()) == (
            released_checksums()
        )
    assert metrics_totals(empty_database) == rolled_up(old_columns["stats_hourly"], before), (
        "/v1/metrics' counters continue from the rollup"
    )
    head = definitions(database_url)
    upgraded = definitions(empty_database)
    assert upgraded == head, "this release's functions, views and triggers"
    record_file = next(f for f in function_files() if f.version.endswith("_record"))
    record = upgraded["function hookpost_record(p_results jsonb, p_circuit jsonb)"]
    assert f"$${record}$$" in record_file.sql, "the record is the one db/functions defines"
    if release == "36afc8a":
        assert release_definitions != head, "the release's own functions were replaced"

    held = attempts(empty_database)
    now = datetime.now(UTC)
    summary = deliver_from(empty_database)

    after = attempts(empty_database)
    assert set(after) == set(held), "no attempt lost, none made"
    got = Counter((r.path, r.webhook_id) for r in receiver.requests)
    want = Counter((d["path"], d["webhook-id"]) for d in expected.deliveries.values())
    assert got == want, "each pending and recovered attempt sent once, nothing else"
    by_request = {(r.path, r.webhook_id): r for r in receiver.requests}
    for attempt_id, delivery in expected.deliveries.items():
        request = by_request[delivery["path"], delivery["webhook-id"]]
        assert request.verify(delivery["secret"]) == delivery["payload"]
        assert request.headers["x-team"] == delivery["x-team"]
        assert request.headers["content-type"] == "application/json"
        assert after[attempt_id]["status"] == "succeeded", after[attempt_id]
        assert after[attempt_id]["response_status"] == 200
    for attempt_id in expected.untouched:
        assert after[attempt_id] == held[attempt_id]
    for attempt_id, status in expected.ended.items():
        assert after[attempt_id]["status"] == status
    for attempt_id, row in held.items():
        if row["status"] not in ("pending", "in_flight"):
            assert after[attempt_id] == row, "finished attempts stay as they were"
    for key, event_ids in expected.keys.items():
        sent = [r.webhook_id for r in receiver.requests if r.webhook_id in event_ids]
        assert sent == event_ids, f"key {key} in ingest order"
    lost = [a for a in held.values() if a["status"] == "in_flight" and a["lease_expires_at"] < now]
    assert summary.recovered == len(lost), "every lease of a dead worker"

    with psycopg.connect(empty_database) as conn:
        for path, subscription_id in expected.probed.items():
            earliest_due = conn.execute(
                "SELECT event_id::text FROM attempts WHERE subscription_id = %s"
                " ORDER BY due_at LIMIT 1",
                (subscription_id,),
            ).fetchone()
            sent = [r.webhook_id for r in receiver.requests if r.path == path]
            assert sent[0] == earliest_due[0], "the probe is the earliest due"
            circuit = conn.execute(
                "SELECT circuit FROM subscription_health WHERE subscription_id = %s",
                (subscription_id,),
            ).fetchone()
            assert circuit == ("closed",), "closed by its probe's success"
