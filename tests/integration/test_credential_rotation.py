"""Credentials from Secrets Manager (moto) that change under a running process, as rotation
changes them: the database password is read again when PostgreSQL refuses it, and the admin
token is read again within its stated bound. Against the real test PostgreSQL, which checks this
test role's password (a pg_hba.conf line for it alone)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import boto3
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from hookpost.config import database_url as current_database_url
from hookpost.config import get_settings
from hookpost.db.pool import close_pool, connection, refused_authentication


def wait_for(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.fixture
def password_role(database_url: str) -> Iterator[dict[str, str]]:
    """A login role whose password PostgreSQL checks (the test server trusts everyone else)."""
    name = f"rotating_{uuid.uuid4().hex[:8]}"
    role = sql.Identifier(name)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'first'").format(role))
        hba = conn.execute("SHOW hba_file").fetchone()[0]
        with open(hba) as f:
            original = f.read()
        with open(hba, "w") as f:
            f.write(f"local all {name} scram-sha-256\n{original}")
        conn.execute("SELECT pg_reload_conf()")

    def refuses_a_wrong_password() -> bool:
        try:
            psycopg.connect(make_conninfo(database_url, user=name, password="wrong")).close()
        except psycopg.OperationalError as exc:
            return refused_authentication(exc)
        return False

    wait_for(refuses_a_wrong_password)
    yield {"username": name, "password": "first"}
    close_pool()
    with psycopg.connect(database_url, autocommit=True) as conn:
        with open(hba, "w") as f:
            f.write(original)
        conn.execute("SELECT pg_reload_conf()")
        conn.execute(sql.SQL("DROP ROLE {}").format(role))


def test_a_rotated_database_password_is_read_again_when_refused(
    aws, env, database_url, password_role
):
    parts = conninfo_to_dict(database_url)
    secrets = boto3.client("secretsmanager")
    arn = secrets.create_secret(Name="app-role", SecretString=json.dumps(password_role))["ARN"]
    env(
        HOOKPOST_DATABASE_SECRET_ID=arn,
        HOOKPOST_DATABASE_HOST=parts["host"],
        HOOKPOST_DATABASE_NAME=parts["dbname"],
    )
    close_pool()
    with connection() as conn:
        assert conn.execute("SELECT current_user AS u").fetchone()["u"] == password_role["username"]
    stale = current_database_url()

    # Rotation: the role's password changes, then the secret (as a rotation function does).
    with psycopg.connect(database_url, autocommit=True) as admin:
        role = sql.Identifier(password_role["username"])
        admin.execute(sql.SQL("ALTER ROLE {} PASSWORD 'second'").format(role))
    secrets.put_secret_value(
        SecretId=arn, SecretString=json.dumps({**password_role, "password": "second"})
    )
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(stale).close()
    assert refused_authentication(refused.value)

    # A new connection (as after the pool's connections end) is refused with what the process
    # read, reads the secret again and connects; the next ones use what it read.
    close_pool()
    with connection() as conn:
        assert conn.execute("SELECT current_user AS u").fetchone()["u"] == password_role["username"]
    assert current_database_url() != stale
    psycopg.connect(current_database_url()).close()


def test_a_rotated_admin_token_stops_working_within_its_bound(aws, env):
    secrets = boto3.client("secretsmanager")
    arn = secrets.create_secret(Name="admin", SecretString="first-token")["ARN"]
    env(HOOKPOST_ADMIN_TOKEN_SECRET_ID=arn, HOOKPOST_ADMIN_TOKEN_MAX_AGE_S="1")
    settings = get_settings()
    assert settings.admin_token_max_age_s == 1
    assert settings.admin_token == "first-token"

    rotated_at = time.monotonic()
    secrets.put_secret_value(SecretId=arn, SecretString="second-token")
    wait_for(lambda: settings.admin_token == "second-token", timeout_s=5)
    # Read again within the bound (plus this machine's scheduling), not at the container's end.
    assert time.monotonic() - rotated_at < settings.admin_token_max_age_s + 1.5


def test_the_admin_token_bound_is_a_minute_by_default(env):
    env(HOOKPOST_ADMIN_TOKEN="plain")
    assert get_settings().admin_token_max_age_s == 60
