"""The batch limit at its edge, with the default settings: a body of exactly
HOOKPOST_MAX_BATCH_BYTES still fits, as API Gateway's event, in what Lambda accepts (so it gets
the function's answer, 202), and a byte more gets the function's 413 rather than API Gateway's
5xx. The body is the worst a valid batch can be for the event's size: mostly `"` characters,
each of which the event's JSON escapes again."""

from __future__ import annotations

import json

from hookpost.config import LAMBDA_REQUEST_LIMIT, get_settings
from support_process import ROOT

# API Gateway accepts at most 10 KiB of headers; the event carries them twice (headers and
# multiValueHeaders), and escaping at most doubles them.
HEADERS_ALLOWANCE = 2 * 2 * 10 * 1024
EVENTS = 16


def batch_of(size: int) -> bytes:
    """A valid batch of exactly `size` bytes, its payloads `"` characters, padded with `a`s."""
    quotes = (size - 20_000) // (2 * EVENTS)
    events = [{"event_type": "invoice.paid", "payload": {"q": '"' * quotes}} for _ in range(EVENTS)]
    body = json.dumps({"events": events}, separators=(",", ":"))
    pad = size - len(body.encode())
    events[-1]["payload"]["pad"] = "a" * (pad - len(',"pad":""'))
    encoded = json.dumps({"events": events}, separators=(",", ":")).encode()
    assert len(encoded) == size
    return encoded


def gateway_event(body: bytes) -> bytes:
    """The Lambda request API Gateway makes of a POST of `body` (the sample's envelope)."""
    event = json.loads((ROOT / "events" / "ingest_send_event.json").read_text())
    event["path"] = event["path"].replace("/events", "/events/batch")
    event["body"] = body.decode()
    return json.dumps(event).encode()


def test_a_batch_at_the_limit_reaches_the_function_and_one_over_gets_its_413(tenant):
    limit = get_settings().max_batch_bytes
    tenant.event_type("invoice.paid")
    at_limit, over = batch_of(limit), batch_of(limit + 1)
    assert len(gateway_event(at_limit)) + HEADERS_ALLOWANCE <= LAMBDA_REQUEST_LIMIT
    headers = {**tenant.headers, "Content-Type": "application/json"}

    accepted = tenant.api.post(tenant.path("/events/batch"), content=at_limit, headers=headers)
    assert accepted.status_code == 202, accepted.text
    assert len(accepted.json()["data"]) == EVENTS

    refused = tenant.api.post(tenant.path("/events/batch"), content=over, headers=headers)
    assert refused.status_code == 413
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["status"] == 413
