"""Which buckets a request draws from, and Retry-After."""

from __future__ import annotations

import hashlib

import pytest

from hookpost.config import LimitSettings, RateLimit
from hookpost.limits import Throttled, buckets, retry_after

SCOPES = {"global": RateLimit(100, 10), "ip": RateLimit(20, 2), "key": RateLimit(5, 1)}


def event(token: str | None = None, ip: str | None = "203.0.113.9") -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return {"headers": headers, "requestContext": {"identity": {"sourceIp": ip}}}


def test_global_ip_and_the_tokens_hash():
    wanted = buckets(event("hp_secret"), SCOPES)
    digest = hashlib.sha256(b"hp_secret").hexdigest()
    assert wanted == {
        "global": SCOPES["global"],
        "ip:203.0.113.9": SCOPES["ip"],
        f"key:{digest}": SCOPES["key"],
    }
    assert not any("hp_secret" in key for key in wanted)


def test_without_a_token_no_key_bucket():
    assert set(buckets(event(), SCOPES)) == {"global", "ip:203.0.113.9"}
    assert set(buckets({"headers": {"authorization": "Basic abc"}}, SCOPES)) == {
        "global",
        "ip:unknown",
    }


def test_header_name_is_case_insensitive():
    lower = {"headers": {"authorization": "bearer tok"}, "requestContext": {}}
    assert len(buckets(lower, SCOPES)) == 3


@pytest.mark.parametrize(
    ("seconds", "header"), [(0.0, 1), (0.2, 1), (1.0, 1), (1.01, 2), (59.5, 60)]
)
def test_retry_after_is_whole_seconds_rounded_up(seconds, header):
    assert retry_after(seconds) == header


def test_detail_names_the_limits():
    assert Throttled(3, ["ip", "key"]).detail == "rate limit exceeded (ip, key); retry in 3 s"


def test_settings(monkeypatch):
    monkeypatch.setenv("HOOKPOST_LIMIT_KEY_BURST", "3")
    monkeypatch.setenv("HOOKPOST_LIMIT_KEY_PER_S", "0.5")
    monkeypatch.setenv("HOOKPOST_LIMITS", "off")
    settings = LimitSettings.from_env()
    assert settings.scopes["key"] == RateLimit(3, 0.5)
    assert not settings.enabled
    monkeypatch.delenv("HOOKPOST_LIMITS")
    assert LimitSettings.from_env().enabled


@pytest.mark.parametrize(("name", "value"), [("BURST", "0.5"), ("PER_S", "0")])
def test_settings_refuse_buckets_that_never_allow(monkeypatch, name, value):
    monkeypatch.setenv(f"HOOKPOST_LIMIT_IP_{name}", value)
    with pytest.raises(ValueError, match="HOOKPOST_LIMIT_IP"):
        LimitSettings.from_env()
