"""The migrate Lambda invoked with `events/migrate_create.json`, as `sam local invoke` does (the
template's environment, its secret in moto), migrating a fresh database of the real PostgreSQL
and answering CloudFormation on a loopback server standing in for the presigned S3 URL."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest

from hookpost.aws import migration
from hookpost.aws.custom_resource import FAILED, SUCCESS, response_body, send
from hookpost.db.migrate import versioned_migrations
from hookpost.local.gateway import LocalLambdaContext, load_handler
from support_aws import create_secrets, function_environment
from support_process import ROOT


class CloudFormation:
    """A loopback HTTP server recording each PUT, answering as S3 does (or with `status`)."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.status = 200
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                recorder.received.append(
                    {"path": self.path, "headers": dict(self.headers), "body": json.loads(body)}
                )
                self.send_response(recorder.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/response?X-Amz-Signature=abc"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def cloudformation() -> Iterator[CloudFormation]:
    server = CloudFormation()
    yield server
    server.close()


@pytest.fixture
def fresh_database(database_url: str) -> Iterator[str]:
    name = f"hookpost_migrate_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def migrate_with(aws, env, database_url):
    """Set the template's environment for the migrate function, the database named; returns
    its handler."""
    values = create_secrets(database_url, admin_token="unused")

    def configure(database: str):
        computed = {**values, "HOOKPOST_DATABASE_NAME": database}
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

    def create_later() -> None:
        time.sleep(0.5)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    creator = threading.Thread(target=create_later)
    creator.start()
    try:
        context = LocalLambdaContext(deadline_ms=int(time.time() * 1000) + 60_000)
        answer = handler(request(cloudformation), context)
    finally:
        creator.join()
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    assert answer["Status"] == SUCCESS
    assert answer["Data"]["Applied"] != "none"


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
