"""Migrations: ordered SQL files, each applied once, safe when two processes start together."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from hookpost.db.migrate import migrate, migration_files


@pytest.fixture
def empty_database(database_url: str) -> Iterator[str]:
    name = f"hookpost_migrate_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield make_conninfo(database_url, dbname=name)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def applied(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]


def test_migrations_apply_in_order_once(empty_database):
    versions = [version for version, _ in migration_files()]
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
    total = len(migration_files())
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
