"""The ingest routes answer a request they accept without the resolver (`events.direct`): for
every request, accepted or refused at any step, the handler's answer (status, headers and body,
as API Gateway gets it) is the one the resolver gives, and the requests that can go without it
do."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from hookpost.api import app
from hookpost.api.routes import events
from hookpost.local.gateway import LocalLambdaContext
from support import ADMIN, Tenant, create_tenant

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
EVENT = {"event_type": "invoice.paid", "payload": {"n": 1}}
SCHEMA = {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}
# Over the per-event limit the test sets (HOOKPOST_MAX_EVENT_BYTES), under the request's.
LARGE = {"event_type": "invoice.paid", "payload": {"note": "x" * 3000}}


def request(tenant: Tenant, path: str, body: Any, **options: Any) -> dict[str, Any]:
    """An API Gateway proxy event as `sam local` and API Gateway send it."""
    headers = {
        "Authorization": f"Bearer {options.get('key', tenant.key)}",
        "Content-Type": options.get("content_type", "application/json"),
    }
    full_path = f"/v1/applications/{options.get('app_id', tenant.id)}{path}"
    return {
        "resource": "/{proxy+}",
        "path": full_path,
        "httpMethod": "POST",
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": full_path.lstrip("/")},
        "requestContext": {"path": full_path, "identity": {"sourceIp": "198.51.100.7"}},
        "body": body if isinstance(body, str) else json.dumps(body, ensure_ascii=False),
        "isBase64Encoded": False,
    }


# (what, path, body, request options, whether the resolver is left out)
CASES = [
    ("one event", "/events", EVENT, {}, True),
    (
        "every field",
        "/events",
        {
            **EVENT,
            "event_id": "order-1",
            "labels": {"region": "eu"},
            "occurred_at": "2026-01-02T03:04:05",
            "ordering_key": "customer-7",
            "deliver_at": "2020-01-01T00:00:00Z",
            "expires_at": "2999-01-01T00:00:00+02:00",
            "priority": "high",
        },
        {},
        True,
    ),
    ("a non-ASCII event_id", "/events", {**EVENT, "event_id": "café-☕-\U0001f600"}, {}, True),
    (
        "a batch with a duplicate",
        "/events/batch",
        {
            "events": [
                {**EVENT, "event_id": "b-1"},
                {**EVENT, "event_id": "b-1"},
                EVENT,
            ]
        },
        {},
        True,
    ),
    (
        "content type with a charset",
        "/events",
        EVENT,
        {"content_type": "application/json; charset=utf-8"},
        True,
    ),
    ("no JSON content type", "/events", EVENT, {"content_type": "text/plain"}, True),
    ("an upper-case app id", "/events", EVENT, {"upper": True}, True),
    ("an unknown event type", "/events", {**EVENT, "event_type": "no.such"}, {}, True),
    ("a payload against the schema", "/events", {"event_type": "checked", "payload": {}}, {}, True),
    ("an inactive event type", "/events", {**EVENT, "event_type": "retired"}, {}, True),
    (
        "a reserved event type",
        "/events/batch",
        {
            "events": [
                EVENT,
                {**EVENT, "event_type": "hookpost.endpoint.disabled"},
            ]
        },
        {},
        True,
    ),
    ("an expiry in the past", "/events", {**EVENT, "expires_at": "2001-01-01T00:00:00Z"}, {}, True),
    ("NaN in the payload", "/events", '{"event_type": "invoice.paid", "payload": NaN}', {}, True),
    ("a NUL in the payload", "/events", {**EVENT, "payload": "a\u0000b"}, {}, True),
    ("an event over the limit", "/events/batch", {"events": [EVENT, LARGE]}, {}, True),
    ("a revoked key", "/events", EVENT, {"revoked": True}, True),
    ("another application's id", "/events", EVENT, {"other_app": True}, True),
    ("an invalid body", "/events", {**EVENT, "priority": "urgent"}, {}, False),
    ("an unknown field", "/events", {**EVENT, "colour": "red"}, {}, False),
    ("no payload", "/events", {"event_type": "invoice.paid"}, {}, False),
    ("an empty batch", "/events/batch", {"events": []}, {}, False),
    ("a bad event in a batch", "/events/batch", {"events": [EVENT, {"payload": 1}]}, {}, False),
    ("a list for a body", "/events", [EVENT], {}, False),
    ("a string for a body", "/events", '"x"', {}, False),
    ("invalid JSON", "/events", '{"event_type": ', {}, False),
    ("another content type", "/events", EVENT, {"content_type": "text/json"}, False),
    ("an app id that is no UUID", "/events", EVENT, {"app_id": "not-a-uuid"}, False),
    ("an app id of UUID characters", "/events", EVENT, {"app_id": "-" * 36}, False),
    ("a trailing slash", "/events/", EVENT, {}, False),
    (
        "a revoked key and an invalid body",
        "/events",
        {**EVENT, "priority": "urgent"},
        {"revoked": True},
        False,
    ),
]


def tenant_for(api, name: str) -> Tenant:
    tenant = create_tenant(api, name)
    tenant.event_type("invoice.paid")
    tenant.event_type("checked", schema=SCHEMA)
    tenant.event_type("retired")
    assert tenant.delete("/event-types/retired").status_code in (200, 204)
    tenant.post("/subscriptions", {"url": "http://127.0.0.1:9/", "event_types": ["*"]})
    return tenant


def answer(api, ingest_handler, tenant: Tenant, path: str, body: Any, options: dict) -> dict:
    options = dict(options)
    if options.pop("upper", False):
        options["app_id"] = tenant.id.upper()
    if options.pop("other_app", False):
        options["app_id"] = create_tenant(api, "other").id
    if options.pop("revoked", False):
        for key in api.get(tenant.path("/api-keys"), headers=ADMIN).json()["data"]:
            api.delete(tenant.path(f"/api-keys/{key['id']}"), headers=ADMIN)
    return ingest_handler(request(tenant, path, body, **options), LocalLambdaContext())


def normalised(response: dict, tenant: Tenant) -> str:
    """The answer with what differs from one tenant to the next (ids made here) blanked."""
    text = json.dumps(response, sort_keys=True).replace(tenant.id, "<app>")
    return UUID.sub("<uuid>", text)


@pytest.mark.parametrize(
    ("what", "path", "body", "options", "direct"), CASES, ids=[c[0] for c in CASES]
)
def test_the_handler_answers_as_the_resolver_does(
    api, ingest_handler, env, monkeypatch, what, path, body, options, direct
):
    env(HOOKPOST_MAX_EVENT_BYTES="2048")
    resolved = []
    resolve = app.resolver.resolve

    def resolve_ingest(event: dict, context: Any) -> dict:
        if "/events" in event["path"]:
            resolved.append(event["path"])
        return resolve(event, context)

    monkeypatch.setattr(app.resolver, "resolve", resolve_ingest)
    without = tenant_for(api, "direct")
    direct_answers = [answer(api, ingest_handler, without, path, body, options) for _ in range(2)]
    assert (not resolved) == direct, resolved

    monkeypatch.setattr(events, "direct", lambda event: None)
    with_resolver = tenant_for(api, "resolver")
    resolver_answers = [
        answer(api, ingest_handler, with_resolver, path, body, options) for _ in range(2)
    ]

    assert [normalised(a, without) for a in direct_answers] == [
        normalised(a, with_resolver) for a in resolver_answers
    ]


def test_a_throttled_ingest_answers_as_the_resolver_does(api, ingest_handler, env, monkeypatch):
    without, with_resolver = tenant_for(api, "direct"), tenant_for(api, "resolver")
    env(HOOKPOST_LIMITS="on", HOOKPOST_LIMIT_KEY_BURST="1", HOOKPOST_LIMIT_KEY_PER_S="0.001")
    direct_answers = [answer(api, ingest_handler, without, "/events", EVENT, {}) for _ in range(2)]
    monkeypatch.setattr(events, "direct", lambda event: None)
    resolver_answers = [
        answer(api, ingest_handler, with_resolver, "/events", EVENT, {}) for _ in range(2)
    ]

    assert [a["statusCode"] for a in direct_answers] == [202, 429]
    # Retry-After counts down from the bucket's last refill: seconds apart at most.
    digits = re.compile(r"\d{3,}")
    assert [digits.sub("<s>", normalised(a, without)) for a in direct_answers] == [
        digits.sub("<s>", normalised(a, with_resolver)) for a in resolver_answers
    ]
