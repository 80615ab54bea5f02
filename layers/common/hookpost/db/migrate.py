"""Schema migrations: versioned files applied once each, then the functions re-applied.

Two kinds of SQL file, both packaged with this module:

- `migrations/NNNN_name.sql` change tables, indexes and data. Each is applied once, in its own
  transaction, and recorded in `schema_migrations` with its SHA-256. Once released a file never
  changes: `migrate` stops with `MigrationChanged`, naming the file, when an applied file's text
  differs from what was applied; `released.json` beside them pins every released checksum and a
  test holds the files to it. A file whose first line is `-- hookpost: no-transaction` runs one
  statement at a time outside a transaction, for what cannot run inside one (`CREATE INDEX
  CONCURRENTLY` on a live table); its statements must be safe to run again (`IF NOT EXISTS`),
  since a failure part-way leaves the earlier ones done. A repair for one old release's databases
  may sort between released files (`0004a_...`); it is applied late, out of order, on databases
  already past it, and must do nothing there.
- `functions/NNN_name.sql` define functions, views and triggers with `CREATE OR REPLACE`. All of
  them are re-applied, in file order and in one transaction, on every `migrate`, after the
  versioned files: a database always runs the functions of the release that migrated it last,
  whatever release created it.

Everything runs under one session advisory lock, so any number of processes may migrate at once:
the first does the work, the others wait and then find nothing left to apply. Every statement
waits at most `lock_timeout_s` for a table lock (a long transaction elsewhere must not queue the
whole application behind a migration's lock); a migration that hits the timeout is rolled back
and tried again a few times before `migrate` gives up.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

import psycopg
from psycopg import errors

from hookpost.db import queries

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same for every process that migrates.
_MIGRATION_LOCK_KEY = 7_210_342_118
_NO_TRANSACTION = "-- hookpost: no-transaction"
_LOCK_TRIES = 5
_LOCK_POLL_S = 0.1


class MigrationError(RuntimeError):
    """The database cannot be brought to this release's schema; the message says why."""


class MigrationChanged(MigrationError):
    """A migration file differs from the one applied to this database."""


@dataclass(frozen=True)
class Migration:
    version: str  # the file name without .sql, e.g. "0005_endpoint_health"
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def transactional(self) -> bool:
        return not self.sql.startswith(_NO_TRANSACTION)

    def statements(self) -> list[str]:
        """A no-transaction file's statements: each ends with `;` at the end of a line."""
        parts = (part.strip() for part in self.sql.split(";\n"))
        return [p for p in parts if p and not all(line.startswith("--") for line in p.splitlines())]


def _package_folder(name: str) -> Traversable:
    return resources.files("hookpost.db") / name


def _read(folder: Traversable) -> list[Migration]:
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [Migration(f.name.removesuffix(".sql"), f.read_text()) for f in files]


def versioned_migrations(folder: Traversable | None = None) -> list[Migration]:
    """The versioned migrations, in the order they apply."""
    return _read(folder or _package_folder("migrations"))


def function_files(folder: Traversable | None = None) -> list[Migration]:
    """The function, view and trigger files, in the order they are re-applied."""
    return _read(folder or _package_folder("functions"))


def released_checksums() -> dict[str, str]:
    """Every released migration's SHA-256, by version (`migrations/released.json`)."""
    return json.loads((_package_folder("migrations") / "released.json").read_text())


def migrate(
    database_url: str,
    *,
    migrations: list[Migration] | None = None,
    functions: list[Migration] | None = None,
    lock_timeout_s: float = 10.0,
) -> list[str]:
    """Apply pending migrations and re-apply every function file; returns the versions applied.

    Safe to run concurrently. Raises MigrationError (MigrationChanged for an edited file) and
    changes nothing when the database does not fit this release's migrations.
    """
    migrations = versioned_migrations() if migrations is None else migrations
    functions = function_files() if functions is None else functions
    applied: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        _take_migration_lock(conn)
        try:
            conn.execute(queries.MIGRATIONS_TABLE)
            conn.execute(queries.MIGRATIONS_CHECKSUM_COLUMN)
            _adopt_unrecorded_checksums(conn, migrations)
            done = dict(conn.execute(queries.MIGRATIONS_APPLIED).fetchall())
            _check_history(done, migrations)
            conn.execute(queries.MIGRATIONS_LOCK_TIMEOUT, {"timeout": f"{lock_timeout_s}s"})
            for migration in migrations:
                if migration.version in done:
                    continue
                _with_lock_retries(migration.version, lambda m=migration: _apply(conn, m))
                log.info("applied migration %s", migration.version)
                applied.append(migration.version)
            _with_lock_retries("functions", lambda: _apply_functions(conn, functions))
        finally:
            conn.execute(queries.MIGRATIONS_UNLOCK, {"key": _MIGRATION_LOCK_KEY})
    return applied


def _take_migration_lock(conn: psycopg.Connection) -> None:
    """The session lock: a second process waits here, then finds nothing left to do. It waits
    by trying again rather than in one blocking statement: a CREATE INDEX CONCURRENTLY of the
    holder waits for every statement older than itself to end, a blocked lock call included,
    which would deadlock."""
    while not conn.execute(queries.MIGRATIONS_LOCK, {"key": _MIGRATION_LOCK_KEY}).fetchone()[0]:
        time.sleep(_LOCK_POLL_S)


def _adopt_unrecorded_checksums(conn: psycopg.Connection, migrations: list[Migration]) -> None:
    """Releases before checksums were kept recorded versions only: take the released file as the
    one applied (released files never change, and a test holds them to released.json)."""
    conn.execute(
        queries.MIGRATION_ADOPT_CHECKSUMS,
        {
            "versions": [m.version for m in migrations],
            "checksums": [m.checksum for m in migrations],
        },
    )


def _check_history(done: dict[str, str], migrations: list[Migration]) -> None:
    known = {m.version: m for m in migrations}
    unknown = sorted(set(done) - set(known))
    if unknown:
        raise MigrationError(
            f"this database has migration {unknown[0]}, which this release does not have: it was "
            "migrated by a newer release; deploy that release or a later one"
        )
    for version, checksum in sorted(done.items()):
        if checksum != known[version].checksum:
            raise MigrationChanged(
                f"migration {version}.sql differs from the one applied to this database "
                f"(applied sha256 {checksum[:12]}, file {known[version].checksum[:12]}): a "
                "released migration never changes; restore the file and put the change in a new "
                "migration"
            )


def _apply(conn: psycopg.Connection, migration: Migration) -> None:
    record = {"version": migration.version, "checksum": migration.checksum}
    if migration.transactional:
        with conn.transaction():
            conn.execute(migration.sql)
            conn.execute(queries.MIGRATION_RECORD, record)
        return
    for statement in migration.statements():
        conn.execute(statement)
    conn.execute(queries.MIGRATION_RECORD, record)


def _apply_functions(conn: psycopg.Connection, functions: list[Migration]) -> None:
    with conn.transaction():
        for function_file in functions:
            conn.execute(function_file.sql)


def _with_lock_retries(what: str, step: Callable[[], None]) -> None:
    for attempt in range(1, _LOCK_TRIES + 1):
        try:
            step()
            return
        except errors.LockNotAvailable as exc:
            if attempt == _LOCK_TRIES:
                raise MigrationError(
                    f"{what}: a table lock was not granted within the lock timeout "
                    f"{_LOCK_TRIES} times; a long transaction holds it: {exc}"
                ) from exc
            log.warning("%s waited too long for a lock; trying again (%d)", what, attempt)
            time.sleep(attempt)
