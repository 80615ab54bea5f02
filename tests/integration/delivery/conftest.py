"""Delivery fixtures: a receiver on loopback, settings at test speed, a subscribed tenant."""

from __future__ import annotations

import pytest

from support import Tenant
from support_delivery import Receiver, settle_strays

# Retries in tens of milliseconds, no jitter (delays are asserted), polling, lease recovery,
# timeouts and the stopping grace at test speed.
FAST = {
    "HOOKPOST_RETRY_FAST_S": "0.05",
    "HOOKPOST_RETRY_FAST_MAX_S": "0.2",
    "HOOKPOST_RETRY_FAST_COUNT": "3",
    "HOOKPOST_RETRY_SLOW_S": "0.3",
    "HOOKPOST_RETRY_SLOW_COUNT": "1",
    "HOOKPOST_RETRY_JITTER": "0",
    "HOOKPOST_DELIVERY_POLL_S": "0.05",
    "HOOKPOST_DELIVERY_RECOVER_S": "0.2",
    "HOOKPOST_DELIVERY_TIMEOUT_S": "2",
    "HOOKPOST_DELIVERY_CONNECT_TIMEOUT_S": "1",
    "HOOKPOST_DELIVERY_STOP_GRACE_S": "0.5",
}


@pytest.fixture(autouse=True)
def no_strays(database_url: str) -> None:
    """Each test's loops deliver only what the test sends."""
    settle_strays(database_url)


@pytest.fixture
def fast(env, database_url) -> None:
    env(**FAST)


@pytest.fixture
def no_retries(env, fast) -> None:
    """A failed first try gives up at once."""
    env(HOOKPOST_RETRY_FAST_COUNT="0", HOOKPOST_RETRY_SLOW_COUNT="0")


@pytest.fixture
def subscribed(tenant: Tenant, receiver: Receiver, fast) -> dict:
    """The tenant's subscription to the receiver, for every event type; invoice.paid exists."""
    tenant.event_type("invoice.paid")
    return tenant.subscription(url=receiver.url, headers={"X-Team": "billing"})
