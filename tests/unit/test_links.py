"""Fetch links of thin deliveries: a token says what it was made for, only the key it was made
with verifies it, one spelling per token, and it expires after 24 hours; and where the deliver
loop learns the API's public address."""

from __future__ import annotations

import time
import uuid

import boto3

from hookpost.config import get_settings
from hookpost.links import LINK_TTL_S, make_token, read_token

EVENT, SUBSCRIPTION = uuid.uuid4(), uuid.uuid4()


def test_a_token_reads_back_what_it_was_made_for():
    now = time.time()
    link = read_token(make_token(EVENT, SUBSCRIPTION, "whsec_stored", now=now))
    assert link is not None
    assert (link.event_id, link.subscription_id) == (EVENT, SUBSCRIPTION)
    assert link.expires_at == int(now) + LINK_TTL_S and not link.expired
    assert link.signed_with("whsec_stored") and not link.signed_with("whsec_other")


def test_a_day_old_token_has_expired():
    link = read_token(make_token(EVENT, SUBSCRIPTION, "k", now=time.time() - LINK_TTL_S))
    assert link is not None and link.expired and link.signed_with("k")


def test_every_other_spelling_of_a_token_is_refused():
    token = make_token(EVENT, SUBSCRIPTION, "k", now=time.time())
    assert len(token) == 75 and token.isascii() and "=" not in token
    for other in (token + "=", token + "!", " " + token, token[:-1], token + "A", token.upper()):
        link = read_token(other)
        assert link is None or not link.signed_with("k"), other
    last = token[-1]
    # The last character carries 2 bits: its spellings with other trailing bits are not it.
    for char in "ABCDEFGHIJKLMNOP":
        if char != last:
            link = read_token(token[:-1] + char)
            assert link is None or not link.signed_with("k"), char


def test_the_public_url_defaults_to_the_local_api(env):
    env(HOOKPOST_PORT="3456")
    assert get_settings().delivery.public_url == "http://127.0.0.1:3456"
    env(HOOKPOST_PUBLIC_URL="https://hooks.example.com/")
    assert get_settings().delivery.public_url == "https://hooks.example.com"


def test_on_aws_the_public_url_is_read_from_its_parameter(aws, env):
    boto3.client("ssm").put_parameter(
        Name="/stack/public-url", Value="https://abc.execute-api.test/prod", Type="String"
    )
    env(HOOKPOST_PUBLIC_URL_PARAMETER="/stack/public-url")
    assert get_settings().delivery.public_url == "https://abc.execute-api.test/prod"
