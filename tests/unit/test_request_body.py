"""The body and headers the sender writes, byte for byte what it wrote with json.dumps of the
head: the body is signed, so a byte changed is a different signature."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookpost.delivery.sender import request_body, request_headers
from hookpost.timestamps import rfc3339

SECRET = "whsec_" + "A" * 44


def written_before(event_type: str, occurred_at: datetime, payload_json: str) -> bytes:
    head = json.dumps({"type": event_type, "timestamp": rfc3339(occurred_at)})
    return f'{head[:-1]}, "data": {payload_json}}}'.encode()


@pytest.mark.parametrize(
    "event_type",
    ["b.e", 'with "quotes"', "back\\slash", "ünï.çødé", "line\nbreak\ttab", "\x00\x1f", "😀"],
)
def test_the_body_is_the_same_bytes_as_json_dumps_wrote(event_type):
    occurred_at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    body = request_body(event_type, occurred_at, '{"x": [1, "y"]}')
    assert body == written_before(event_type, occurred_at, '{"x": [1, "y"]}')
    assert json.loads(body) == {
        "type": event_type,
        "timestamp": "2026-01-02T03:04:05.678901Z",
        "data": {"x": [1, "y"]},
    }


@settings(max_examples=200, derandomize=True)
@given(
    event_type=st.text(max_size=40),
    occurred_at=st.datetimes(timezones=st.just(timezone(timedelta(hours=-7)))),
)
def test_any_type_and_time_give_the_same_bytes(event_type, occurred_at):
    assert request_body(event_type, occurred_at, "null") == written_before(
        event_type, occurred_at, "null"
    )


def attempt(headers: dict[str, str] | None) -> dict:
    return {
        "secret": SECRET,
        "previous_secret": None,
        "batch_id": None,
        "event_id": uuid.uuid4(),
        "headers": headers,
    }


def test_without_headers_of_its_own_a_request_has_ours():
    headers = request_headers(attempt(None), b"{}", 1700000000)
    assert set(headers) == {
        "content-type",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }


def test_a_subscriptions_headers_are_sent_and_ours_win():
    # Names the API refuses now, in rows written before it did.
    own = {"X-Tenant": "t1", "Content-Type": "text/plain", "Webhook-Id": "forged"}
    sent = attempt(own)
    headers = request_headers(sent, b"{}", 1700000000)
    assert headers["x-tenant"] == "t1"
    assert headers.getall("content-type") == ["application/json"]
    assert headers.getall("webhook-id") == [str(sent["event_id"])]
