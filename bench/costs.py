"""What a delivered attempt costs the database, counted rather than timed: round trips (through a
counting proxy), WAL bytes (pg_current_wal_lsn deltas, and by relation from pg_waldump) and
backend CPU (/proc/<pid>/schedstat of the backends serving the work). The same is measured for a
minimal schema doing the same logical work (lease due attempts, record their outcomes) in the
same run."""

from __future__ import annotations

import asyncio
import collections
import os
import re
import shutil
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

# A minimal delivery queue: one row per attempt, a primary key and the one index a claim needs.
MINIMAL_SCHEMA = """
DROP TABLE IF EXISTS bench_minimal_attempts;
CREATE TABLE bench_minimal_attempts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id uuid NOT NULL,
    status text NOT NULL DEFAULT 'pending',
    due_at timestamptz NOT NULL DEFAULT now(),
    claimed_by uuid,
    lease_expires_at timestamptz,
    finished_at timestamptz,
    response_status integer,
    response_body text,
    elapsed_ms integer
);
CREATE INDEX bench_minimal_pending_idx ON bench_minimal_attempts (due_at)
    WHERE status = 'pending';
"""

MINIMAL_CLAIM = """
UPDATE bench_minimal_attempts m
SET status = 'in_flight', claimed_by = %(claim)s, lease_expires_at = now() + interval '60 s'
FROM events e
WHERE m.id = ANY(ARRAY(
        SELECT id FROM bench_minimal_attempts
        WHERE status = 'pending' AND due_at <= now()
        ORDER BY due_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED))
  AND e.id = m.event_id
RETURNING m.id, e.event_type, e.payload::text
"""

MINIMAL_RECORD = """
UPDATE bench_minimal_attempts m
SET status = 'succeeded', finished_at = now(), lease_expires_at = NULL,
    response_status = 200, response_body = %(body)s, elapsed_ms = 1
WHERE m.id = ANY(%(ids)s) AND m.claimed_by = %(claim)s
"""


class RoundTripProxy:
    """A proxy to PostgreSQL on a Unix socket of its own that counts round trips: the Sync and
    Query messages clients send, each of which the client waits on for the server's
    ReadyForQuery (the statements pipelined before one Sync share its round trip; the start-up
    handshake is not counted)."""

    def __init__(self, url: str) -> None:
        self._target = conninfo_to_dict(url)
        self._dir = tempfile.mkdtemp(prefix="hookpost-rt-")
        os.chmod(self._dir, 0o777)
        self._port = 5999
        self.trips = 0
        self._server: asyncio.AbstractServer | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def url(self, url: str) -> str:
        """url, connecting through this proxy instead."""
        return make_conninfo(url, host=self._dir, port=str(self._port))

    def _upstream(self) -> tuple[str, int | None]:
        host = self._target.get("host") or "/tmp"
        port = int(self._target.get("port") or 5432)
        if host.startswith("/"):
            return f"{host}/.s.PGSQL.{port}", None
        return host, port

    def _counter(self) -> Callable[[bytes], None]:
        """A parser of one client's message stream that counts its Sync and Query messages."""
        pending = bytearray()
        started = False

        def count(data: bytes) -> None:
            nonlocal started
            pending.extend(data)
            while True:
                if not started:
                    # The start-up packet, or an SSL or GSS request before it: no type byte.
                    if len(pending) < 8:
                        return
                    length = int.from_bytes(pending[:4], "big")
                    if len(pending) < length:
                        return
                    code = int.from_bytes(pending[4:8], "big")
                    started = code not in (80877103, 80877104)
                    del pending[:length]
                    continue
                if len(pending) < 5:
                    return
                length = int.from_bytes(pending[1:5], "big")
                if len(pending) < 1 + length:
                    return
                if pending[0] in b"SQ":
                    self.trips += 1
                del pending[: 1 + length]

        return count

    async def _serve(self) -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            host, port = self._upstream()
            if port is None:
                up_reader, up_writer = await asyncio.open_unix_connection(host)
            else:
                up_reader, up_writer = await asyncio.open_connection(host, port)
            count = self._counter()

            async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, client: bool):
                try:
                    while data := await src.read(65536):
                        if client:
                            count(data)
                        dst.write(data)
                        await dst.drain()
                except (ConnectionError, OSError):
                    pass
                finally:
                    dst.close()

            # Cancelled only by the proxy's shutdown: end quietly, the connection with it.
            with suppress(asyncio.CancelledError):
                await asyncio.gather(pump(reader, up_writer, True), pump(up_reader, writer, False))

        path = f"{self._dir}/.s.PGSQL.{self._port}"
        server = await asyncio.start_unix_server(handle, path)
        os.chmod(path, 0o777)
        self._ready.set()
        self._server = server

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())
        self._loop.run_forever()

    def __enter__(self) -> RoundTripProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        shutil.rmtree(self._dir, ignore_errors=True)


def backend_cpu_ms(conn: psycopg.Connection, application_name: str) -> float:
    """CPU time so far of the live backends serving connections named application_name."""
    pids = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (application_name,)
    ).fetchall()
    total_ns = 0
    for (pid,) in pids:
        with suppress(FileNotFoundError, PermissionError):
            total_ns += int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    return total_ns / 1e6


def wal_lsn(conn: psycopg.Connection) -> str:
    return conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]


def wal_bytes(conn: psycopg.Connection, start: str, end: str) -> int:
    return conn.execute("SELECT pg_wal_lsn_diff(%s, %s)::bigint", (end, start)).fetchone()[0]


_BLOCK = re.compile(r"blkref #0: rel \d+/\d+/(\d+)")
_LENGTH = re.compile(r"len \(rec/tot\):\s*\d+/\s*(\d+)")


def wal_by_relation(conn: psycopg.Connection, start: str, end: str) -> dict[str, int]:
    """WAL bytes from start to end by the relation of each record's first block (records of no
    block, such as commits, under their resource manager); empty when pg_waldump or the data
    directory cannot be reached (a remote database)."""
    waldump = shutil.which("pg_waldump")
    try:
        import pgserver

        bundled = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_waldump"
        waldump = str(bundled) if bundled.exists() else waldump
    except ImportError:
        pass
    try:
        data_dir = conn.execute("SHOW data_directory").fetchone()[0]
    except psycopg.Error:
        return {}
    if not waldump or not Path(data_dir, "pg_wal").is_dir():
        return {}
    # WAL written with synchronous_commit off reaches the disk within wal_writer_delay.
    conn.execute("SELECT pg_switch_wal()")
    names = dict(conn.execute("SELECT relfilenode::text, relname FROM pg_class").fetchall())
    run = subprocess.run(
        [waldump, "-p", f"{data_dir}/pg_wal", "-s", start, "-e", end],
        capture_output=True,
        text=True,
    )
    totals: dict[str, int] = collections.Counter()
    for line in run.stdout.splitlines():
        length = _LENGTH.search(line)
        if not length:
            continue
        block = _BLOCK.search(line)
        name = names.get(block.group(1), "other") if block else line.split()[1]
        totals[name] += int(length.group(1))
    return dict(totals)


def run_minimal(url: str, proxy: RoundTripProxy, count: int, body: str) -> dict[str, float]:
    """Seed `count` due attempts of the minimal schema (events: the newest `count`), then lease
    and record them 100 at a time with statements unprepared, as on Lambda; returns round trips,
    WAL bytes and backend CPU per attempt, and WAL by relation."""
    name = "bench-minimal-" + uuid.uuid4().hex[:8]
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(MINIMAL_SCHEMA)
        admin.execute(
            "INSERT INTO bench_minimal_attempts (event_id, due_at)"
            " SELECT id, now() - interval '1 hour' FROM events ORDER BY id DESC LIMIT %s",
            (count,),
        )
        admin.execute("VACUUM ANALYZE bench_minimal_attempts")
        trips = proxy.trips
        start = wal_lsn(admin)
        with psycopg.connect(
            proxy.url(url), autocommit=True, prepare_threshold=None, application_name=name
        ) as conn:
            conn.execute("SET synchronous_commit = off")
            done = 0
            while done < count:
                claim = uuid.uuid4()
                rows = conn.execute(MINIMAL_CLAIM, {"claim": claim, "limit": 100}).fetchall()
                if not rows:
                    break
                conn.execute(
                    MINIMAL_RECORD, {"ids": [r[0] for r in rows], "claim": claim, "body": body}
                )
                done += len(rows)
            cpu = backend_cpu_ms(admin, name)
        end = wal_lsn(admin)
        trips = proxy.trips - trips
        by_relation = wal_by_relation(admin, start, end)
        total = wal_bytes(admin, start, end)
        admin.execute("DROP TABLE bench_minimal_attempts")
    return {
        "round_trips": trips / done,
        "wal": total / done,
        "cpu_ms": cpu / done,
        "by_relation": {k: v / done for k, v in by_relation.items()},
    }


@contextmanager
def autovacuum_off(url: str, tables: list[str]) -> Iterator[None]:
    """Autovacuum held off these tables while measuring, so WAL and CPU are the statements'."""
    with psycopg.connect(url, autocommit=True) as conn:
        for table in tables:
            conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
    try:
        yield
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            for table in tables:
                conn.execute(f"ALTER TABLE {table} RESET (autovacuum_enabled)")
