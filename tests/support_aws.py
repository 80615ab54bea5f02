"""What the AWS tests share: template.yaml as CloudFormation reads it, the environment it gives a
function (as `sam local invoke` would), moto in place of the AWS APIs, and secrets made there
like the template's."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cfnlint.decode import decode

from support_process import ROOT

TEMPLATE_PATH = ROOT / "template.yaml"
REGION = "eu-west-1"


@cache
def _template() -> str:
    decoded, errors = decode(str(TEMPLATE_PATH))
    assert not errors, errors
    # Plain dicts and strings, the intrinsics as CloudFormation's JSON form ({"Ref": ...}).
    return json.dumps(decoded)


def load_template() -> dict[str, Any]:
    """A fresh copy of the template each time, so no test can change another's."""
    return json.loads(_template())


def function_environment(function_id: str, **computed: str) -> dict[str, str]:
    """The environment the template gives a function: the Globals' variables, then its own.

    Literal values are taken as they are. Each value the template computes (Ref, Sub, If...)
    must be given in `computed` under the variable's name, so a test knows every one of them;
    names the function does not have are ignored.
    """
    template = load_template()
    own = template["Resources"][function_id]["Properties"].get("Environment", {})
    variables = {
        **template["Globals"]["Function"]["Environment"]["Variables"],
        **own.get("Variables", {}),
    }
    environment = {}
    for name, value in variables.items():
        if isinstance(value, str):
            environment[name] = value
        elif name in computed:
            environment[name] = computed[name]
        else:
            raise KeyError(f"{function_id}'s {name} is computed by the template: give its value")
    # What the Lambda runtime (and sam local) sets besides.
    environment["AWS_LAMBDA_FUNCTION_NAME"] = function_id
    return environment


@contextmanager
def mocked_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto in place of every AWS API, with fake credentials, and hookpost.aws's cached clients
    and powertools' cached secrets forgotten before and after."""
    from aws_lambda_powertools.utilities import parameters
    from moto import mock_aws

    from hookpost.aws import usage_plans, wake

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)

    def forget() -> None:
        parameters.clear_caches()
        for cached in (usage_plans._client, usage_plans._usage_plan_id, wake._client):
            cached.cache_clear()

    forget()
    # Lambda invocations answer without Docker.
    with mock_aws(config={"lambda": {"use_docker": False}}):
        yield
    forget()


def create_secrets(database_url: str, admin_token: str) -> dict[str, str]:
    """The template's two secrets, made in moto: the database credentials as an RDS-style JSON
    secret for `database_url`'s user, and the admin token. Returns the environment values the
    template computes for them (and for the proxy: `database_url`'s host, port and database)."""
    import boto3
    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(database_url)
    client = boto3.client("secretsmanager")
    credentials = {
        "username": parts["user"],
        "password": parts.get("password") or "",
        "port": int(parts.get("port") or 5432),
    }
    database = client.create_secret(Name="hookpost-database", SecretString=json.dumps(credentials))
    admin = client.create_secret(Name="hookpost-admin-token", SecretString=admin_token)
    return {
        "HOOKPOST_DATABASE_SECRET_ID": database["ARN"],
        "HOOKPOST_DATABASE_HOST": str(parts["host"]),
        "HOOKPOST_DATABASE_NAME": str(parts["dbname"]),
        "HOOKPOST_ADMIN_TOKEN_SECRET_ID": admin["ARN"],
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }


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
