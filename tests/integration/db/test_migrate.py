"""Migrations: ordered SQL files, each applied once and checked against what was applied; the
function files re-applied every time; safe when two processes start together."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from hookpost.db.migrate import (
    Migration,
    MigrationChanged,
    MigrationError,
    migrate,
    versioned_migrations,
)
from support_process import wait_for


def applied(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]


def test_migrations_apply_in_order_once(empty_database):
    versions = [m.version for m in versioned_migrations()]
    assert versions == sorted(versions) and versions[0].startswith("0001")
    assert migrate(empty_database) == versions
    assert migrate(empty_database) == []
    assert applied(empty_database) == versions


def test_two_processes_migrating_at_once_apply_each_migration_once(empty_database):
    assert conninfo_to_dict(empty_database)["dbname"].startswith("hookpost_migrate_")
    script = "import sys; from hookpost.db.migrate import migrate; print(len(migrate(sys.argv[1])))"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, empty_database], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60)[0].strip() for p in processes]
    assert [p.returncode for p in processes] == [0, 0]
    total = len(versioned_migrations())
    assert sorted(int(o) for o in outputs) == [0, total], "one applied all, the other none"
    assert len(applied(empty_database)) == total


def test_hookpost_migrate_command(empty_database):
    result = subprocess.run(
        [sys.executable, "-m", "hookpost.cli", "migrate"],
        env={"DATABASE_URL": empty_database, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "0001_schema" in result.stdout


def function_body(url: str, name: str) -> str:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT prosrc FROM pg_proc WHERE proname = %s", (name,)).fetchone()[0]


def test_every_migrate_re_applies_the_function_files(empty_database):
    migrate(empty_database)
    released = function_body(empty_database, "hookpost_rfc3339")
    with psycopg.connect(empty_database) as conn:  # what an older release left behind
        conn.execute(
            "CREATE OR REPLACE FUNCTION hookpost_rfc3339(at timestamptz) RETURNS text "
            "LANGUAGE sql AS $$ SELECT 'stale' $$"
        )

    assert migrate(empty_database) == []
    assert function_body(empty_database, "hookpost_rfc3339") == released


def test_a_changed_applied_migration_stops_migrate_naming_the_file(empty_database):
    migrations = versioned_migrations()
    migrate(empty_database, migrations=migrations[:2], functions=[])  # an older release
    edited = Migration(migrations[1].version, migrations[1].sql + "\n-- an edit\n")

    with pytest.raises(MigrationChanged, match=f"{migrations[1].version}.sql"):
        migrate(empty_database, migrations=[migrations[0], edited, *migrations[2:]])

    assert applied(empty_database) == [m.version for m in migrations[:2]], "nothing applied"


def test_a_database_migrated_by_a_newer_release_is_refused(empty_database):
    migrations = versioned_migrations()
    migrate(empty_database)

    with pytest.raises(MigrationError, match=f"{migrations[-1].version}.*newer release"):
        migrate(empty_database, migrations=migrations[:-1])


def test_checksums_are_adopted_for_migrations_applied_before_they_were_kept(empty_database):
    migrate(empty_database)
    with psycopg.connect(empty_database) as conn:  # the first release's table had no checksum
        conn.execute("ALTER TABLE schema_migrations DROP COLUMN checksum")

    assert migrate(empty_database) == []
    with psycopg.connect(empty_database) as conn:
        recorded = dict(conn.execute("SELECT version, checksum FROM schema_migrations"))
    assert recorded == {m.version: m.checksum for m in versioned_migrations()}


def test_a_no_transaction_migration_builds_an_index_concurrently(empty_database):
    concurrently = Migration(
        "9001_concurrent_index",
        "-- hookpost: no-transaction\n"
        "-- An index on a live table, built without blocking writes.\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS events_test_idx ON events (created_at);\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS attempts_test_idx ON attempts (created_at);\n",
    )

    assert migrate(empty_database, migrations=[*versioned_migrations(), concurrently])[-1] == (
        "9001_concurrent_index"
    )
    with psycopg.connect(empty_database) as conn:
        valid = conn.execute(
            "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE c.relname IN ('events_test_idx', 'attempts_test_idx') ORDER BY 1"
        ).fetchall()
    assert valid == [("attempts_test_idx", True), ("events_test_idx", True)]


def test_a_migration_waiting_on_a_long_transaction_times_out_and_tries_again(
    empty_database, caplog
):
    migrate(empty_database)
    alter = Migration("9002_add_column", "ALTER TABLE events ADD COLUMN note text;\n")
    blocker = psycopg.connect(empty_database)
    blocker.execute("SELECT count(*) FROM events")  # holds ACCESS SHARE until it commits
    result: list[list[str]] = []
    all_migrations = [*versioned_migrations(), alter]
    thread = threading.Thread(
        target=lambda: result.append(
            migrate(empty_database, migrations=all_migrations, lock_timeout_s=0.2)
        )
    )
    with caplog.at_level(logging.WARNING, logger="hookpost.db.migrate"):
        thread.start()
        wait_for(lambda: "9002_add_column waited too long for a lock" in caplog.text)
        blocker.commit()
        blocker.close()
        thread.join(timeout=30)

    assert result == [["9002_add_column"]]


def test_hookpost_migrate_names_a_changed_file_and_fails(empty_database, monkeypatch, capsys):
    from hookpost.cli import main

    migrate(empty_database)
    with psycopg.connect(empty_database) as conn:  # as if 0001 had been edited since it was applied
        conn.execute(
            "UPDATE schema_migrations SET checksum = 'edited' WHERE version = '0001_schema'"
        )
    monkeypatch.setenv("DATABASE_URL", empty_database)

    assert main(["migrate"]) == 1
    assert "0001_schema.sql differs from the one applied" in capsys.readouterr().err
