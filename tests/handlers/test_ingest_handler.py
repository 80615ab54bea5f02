"""The ingest Lambda invoked with the `events/ingest_*.json` samples, as `sam local invoke` does."""

from __future__ import annotations

import json

from hookpost.local.gateway import LocalLambdaContext
from support import create_tenant
from support_process import ROOT

EVENTS = ROOT / "events"
SAMPLE_APP = "01a20000-0000-7000-8000-000000000001"


def sample(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def test_health_sample(ingest_handler, database_url):
    response = ingest_handler(sample("ingest_health.json"), LocalLambdaContext())
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"status": "ok", "database": "ok"}


def test_create_application_sample(ingest_handler, database_url, env):
    env(HOOKPOST_ADMIN_TOKEN="local-admin-token")
    response = ingest_handler(sample("ingest_create_application.json"), LocalLambdaContext())
    assert response["statusCode"] == 201
    assert json.loads(response["body"])["name"] == "shop"


def test_send_event_sample(ingest_handler, api):
    tenant = create_tenant(api)
    tenant.event_type("invoice.paid")
    tenant.subscription(labels={"region": "eu"})
    event = sample("ingest_send_event.json")
    event["path"] = event["path"].replace(SAMPLE_APP, tenant.id)
    for headers in (event["headers"], event["multiValueHeaders"]):
        value = f"Bearer {tenant.key}"
        headers["Authorization"] = value if headers is event["headers"] else [value]
    response = ingest_handler(event, LocalLambdaContext())
    assert response["statusCode"] == 202
    assert json.loads(response["body"])["attempts_created"] == 1
    # the same sample again is the same event: 200, nothing new
    assert ingest_handler(event, LocalLambdaContext())["statusCode"] == 200


def emf(output: str) -> dict[str, list[float]]:
    """The metrics CloudWatch would read from a handler's output."""
    emitted: dict[str, list[float]] = {}
    for line in output.splitlines():
        if line.startswith('{"_aws"'):
            document = json.loads(line)
            (directive,) = document["_aws"]["CloudWatchMetrics"]
            assert directive["Namespace"] == "Hookpost" and document["service"] == "ingest"
            for metric in directive["Metrics"]:
                value = document[metric["Name"]]
                emitted.setdefault(metric["Name"], []).extend(
                    value if isinstance(value, list) else [value]
                )
    return emitted


def test_ingested_events_and_limit_rejections_are_counted(ingest_handler, api, env, capsys):
    tenant = create_tenant(api)
    tenant.event_type("invoice.paid")
    event = sample("ingest_send_event.json")
    event["path"] = event["path"].replace(SAMPLE_APP, tenant.id)
    event["headers"]["Authorization"] = f"Bearer {tenant.key}"
    event["multiValueHeaders"]["Authorization"] = [f"Bearer {tenant.key}"]
    capsys.readouterr()
    assert ingest_handler(event, LocalLambdaContext())["statusCode"] == 202
    assert emf(capsys.readouterr().out)["EventsIngested"] == [1.0]

    env(HOOKPOST_LIMITS="on", HOOKPOST_LIMIT_KEY_BURST="1", HOOKPOST_LIMIT_KEY_PER_S="0.001")
    statuses = [ingest_handler(event, LocalLambdaContext())["statusCode"] for _ in range(2)]
    assert statuses == [200, 429]
    emitted = emf(capsys.readouterr().out)
    assert emitted["LimitRejections"] == [1.0] and "EventsIngested" not in emitted


def test_log_lines_carry_api_gateways_request_id(ingest_handler, database_url):
    from hookpost.api.app import logger

    event = sample("ingest_health.json")
    event["requestContext"]["requestId"] = "c0ffee-request"
    ingest_handler(event, LocalLambdaContext())
    assert logger.get_correlation_id() == "c0ffee-request"

    del event["requestContext"]
    ingest_handler(event, LocalLambdaContext())
    assert logger.get_correlation_id() is None
