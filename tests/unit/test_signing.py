"""Signatures any Standard Webhooks library verifies, whatever the id, time, body and secret."""

from __future__ import annotations

import base64
import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from hookpost.signing import generate_secret, secret_key, signature_header

secrets_ = st.binary(min_size=24, max_size=64).map(
    lambda raw: "whsec_" + base64.b64encode(raw).decode()
)
msg_ids = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=","),
    min_size=1,
    max_size=64,
)
bodies = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10,
).map(lambda data: json.dumps({"type": "a.b", "timestamp": "t", "data": data}).encode())


def headers(msg_id: str, timestamp: int, signature: str) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


@settings(max_examples=200, derandomize=True)
@given(secret=secrets_, msg_id=msg_ids, body=bodies)
def test_the_standard_library_verifies_what_we_sign(secret, msg_id, body):
    now = int(time.time())
    signature = signature_header([secret_key(secret)], msg_id, now, body)
    Webhook(secret).verify(body, headers(msg_id, now, signature))


@settings(max_examples=100, derandomize=True)
@given(old=secrets_, new=secrets_, msg_id=msg_ids, body=bodies)
def test_during_a_rotation_either_secret_verifies(old, new, msg_id, body):
    now = int(time.time())
    signature = signature_header([secret_key(new), secret_key(old)], msg_id, now, body)
    assert len(signature.split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(body, headers(msg_id, now, signature))


@settings(max_examples=100, derandomize=True)
@given(secret=secrets_, other=secrets_, msg_id=msg_ids, body=bodies)
def test_a_tampered_body_or_another_secret_fails(secret, other, msg_id, body):
    now = int(time.time())
    signature = signature_header([secret_key(secret)], msg_id, now, body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers(msg_id, now, signature))
    if other != secret:
        with pytest.raises(WebhookVerificationError):
            Webhook(other).verify(body, headers(msg_id, now, signature))


def test_generated_secrets_are_32_random_bytes():
    secrets = {generate_secret() for _ in range(100)}
    assert len(secrets) == 100
    assert all(len(secret_key(s)) == 32 for s in secrets)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "whsec_",
        "secret",
        "whsec_!!!!",
        "whsec_" + base64.b64encode(b"x" * 23).decode(),
        "whsec_" + base64.b64encode(b"x" * 65).decode(),
    ],
)
def test_secrets_outside_the_standard_are_refused(bad):
    with pytest.raises(ValueError):
        secret_key(bad)
