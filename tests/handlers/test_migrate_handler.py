"""The migrate Lambda invoked with `events/migrate_create.json`, as `sam local invoke` does (the
template's environment, its secret in moto), migrating a fresh database of the real PostgreSQL
and answering CloudFormation on a loopback server standing in for the presigned S3 URL."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from hookpost.aws import migration
from hookpost.aws.custom_resource import FAILED, SUCCESS, response_body, send
from hookpost.db.migrate import versioned_migrations
from hookpost.local.gateway import LocalLambdaContext, load_handler
from support_aws import CloudFormation, create_secrets, function_environment
from support_process import ROOT


@pytest.fixture
def fresh_database(database_url: str) -> Iterator[str]:
    name = f"hookpost_migrate_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def application_role(database_url: str) -> Iterator[dict[str, str]]:
    """The application role's credentials, in a secret as the template makes it; the role is
    dropped afterwards (roles belong to the whole server)."""
    credentials = {"username": f"hookpost_app_{uuid.uuid4().hex[:8]}", "password": "s3cret'pass"}
    yield credentials
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("DROP ROLE IF EXISTS {}").format(
                psycopg.sql.Identifier(credentials["username"])
            )
        )


@pytest.fixture
def migrate_with(aws, env, database_url, application_role):
    """Set the template's environment for the migrate function, the database named; returns
    its handler."""
    import boto3

    values = create_secrets(database_url, admin_token="unused")
    role_secret = boto3.client("secretsmanager").create_secret(
        Name="hookpost-application-role", SecretString=json.dumps(application_role)
    )

    def configure(database: str):
        computed = {
            **values,
            "HOOKPOST_DATABASE_NAME": database,
            migration.APPLICATION_SECRET_ENV: role_secret["ARN"],
        }
        env(**function_environment("MigrateFunction", **computed))
        return load_handler(ROOT / "functions" / "migrate" / "app.py")

    return configure


def request(cloudformation: CloudFormation, request_type: str = "Create") -> dict:
    event = json.loads((ROOT / "events" / "migrate_create.json").read_text())
    event["ResponseURL"] = cloudformation.url
    event["RequestType"] = request_type
    if request_type != "Create":
        event["PhysicalResourceId"] = "hookpost-migrations"
    return event


def applied_versions(database_url: str, database: str) -> list[str]:
    url = psycopg.conninfo.make_conninfo(database_url, dbname=database)
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    return [version for (version,) in rows]


def test_create_migrates_and_answers_success(
    migrate_with, fresh_database, cloudformation, database_url
):
    handler = migrate_with(fresh_database)
    event = request(cloudformation)

    answer = handler(event, LocalLambdaContext(log_stream_name="2026/11/23/[$LATEST]abc"))

    versions = [m.version for m in versioned_migrations()]
    assert applied_versions(database_url, fresh_database) == versions
    assert answer["Status"] == SUCCESS
    assert answer["Data"] == {"Applied": ", ".join(versions)}
    assert answer["PhysicalResourceId"] == "hookpost-migrations"
    for field in ("StackId", "RequestId", "LogicalResourceId"):
        assert answer[field] == event[field]
    assert "2026/11/23/[$LATEST]abc" in answer["Reason"]
    [put] = cloudformation.received
    assert put["path"] == "/response?X-Amz-Signature=abc"
    assert put["body"] == answer
    # The presigned URL was signed for no content type.
    assert put["headers"].get("Content-Type", "") == ""


def test_create_makes_the_application_role_with_only_what_the_application_needs(
    migrate_with, fresh_database, cloudformation, database_url, application_role
):
    handler = migrate_with(fresh_database)
    assert handler(request(cloudformation), LocalLambdaContext())["Status"] == SUCCESS
    # Again, as every deploy does: the role is there already, and nothing fails.
    assert handler(request(cloudformation, "Update"), LocalLambdaContext())["Status"] == SUCCESS

    name = application_role["username"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        role = conn.execute(
            "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolpassword IS NOT NULL"
            " FROM pg_authid WHERE rolname = %s",
            [name],
        ).fetchone()
    assert role == (True, False, False, False, True)
    as_role = psycopg.conninfo.make_conninfo(database_url, dbname=fresh_database, user=name)
    with psycopg.connect(as_role, autocommit=True) as conn:
        [application] = conn.execute(
            "INSERT INTO applications (name) VALUES ('shop') RETURNING id"
        ).fetchone()
        conn.execute(
            "INSERT INTO events (application_id, event_id, event_type, payload, occurred_at,"
            " attempts_created) VALUES (%s, 'e1', 'invoice.paid', '{}', now(), 0)",
            [application],
        )
        # Its functions and sequences too.
        conn.execute("SELECT hookpost_uuid7()")
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (1,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE intruder (id int)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DROP TABLE events")


def test_update_applies_only_what_is_pending(migrate_with, fresh_database, cloudformation):
    handler = migrate_with(fresh_database)
    handler(request(cloudformation, "Create"), LocalLambdaContext())
    answer = handler(request(cloudformation, "Update"), LocalLambdaContext())
    assert (answer["Status"], answer["Data"]) == (SUCCESS, {"Applied": "none"})
    assert [put["body"]["Status"] for put in cloudformation.received] == [SUCCESS, SUCCESS]


def test_delete_touches_nothing(migrate_with, cloudformation):
    # No such database: migrating would fail, so success shows nothing was tried.
    handler = migrate_with("no_such_database")
    answer = handler(request(cloudformation, "Delete"), LocalLambdaContext())
    assert (answer["Status"], answer["Data"]) == (SUCCESS, {})
    assert cloudformation.received[0]["body"]["PhysicalResourceId"] == "hookpost-migrations"


def test_an_unreachable_database_is_waited_for(
    migrate_with, cloudformation, database_url, monkeypatch
):
    """As a new proxy is, for a few minutes after CloudFormation has created it."""
    monkeypatch.setattr(migration, "RETRY_PAUSE_S", 0.2)
    name = f"hookpost_migrate_{uuid.uuid4().hex[:12]}"
    handler = migrate_with(name)
    retrying = Logged("database not reachable yet")
    logging.getLogger(migration.logger.name).addHandler(retrying)

    def create_later() -> None:
        # Only once the handler has met the missing database and waits to try again.
        if retrying.seen.wait(timeout=30):
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')

    creator = threading.Thread(target=create_later)
    creator.start()
    try:
        context = LocalLambdaContext(deadline_ms=int(time.time() * 1000) + 60_000)
        answer = handler(request(cloudformation), context)
    finally:
        creator.join()
        logging.getLogger(migration.logger.name).removeHandler(retrying)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    assert answer["Status"] == SUCCESS
    assert answer["Data"]["Applied"] != "none"


class Logged(logging.Handler):
    """Notes when a record with `text` in its message is logged."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()


def test_a_failed_migration_answers_failed_with_the_reason(migrate_with, cloudformation):
    handler = migrate_with("no_such_database")
    # Too little time left to wait for the database: the answer must go out before the end.
    context = LocalLambdaContext(deadline_ms=int(time.time() * 1000) + 35_000)
    answer = handler(request(cloudformation), context)
    assert answer["Status"] == FAILED
    assert "no_such_database" in answer["Reason"]
    assert cloudformation.received[0]["body"] == answer


def test_an_answer_that_cannot_be_delivered_fails_the_invocation(cloudformation):
    # Lambda then retries the invocation; the migration is safe to run again.
    cloudformation.status = 403
    with pytest.raises(OSError, match="403"):
        send(cloudformation.url, {"Status": SUCCESS})


def test_a_long_reason_is_cut_to_fit_cloudformation(cloudformation):
    body = response_body(
        request(cloudformation), LocalLambdaContext(), FAILED, "id", reason="x" * 10_000
    )
    assert len(body["Reason"]) == 1000
    assert len(json.dumps(body)) < 4096
