"""Subscription secrets are sealed at rest when HOOKPOST_ENCRYPTION_KEY is set."""

from __future__ import annotations

import psycopg
import pytest

from hookpost.secrets_at_rest import SEALED_PREFIX, generate_key


def stored(database_url: str, sub_id: str) -> tuple[str, str | None]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT secret, previous_secret FROM subscriptions WHERE id = %s", (sub_id,)
        ).fetchone()


def test_secrets_are_sealed_and_shown_in_clear(tenant, env, database_url):
    env(HOOKPOST_ENCRYPTION_KEY=generate_key())
    sub = tenant.subscription()
    secret, _ = stored(database_url, sub["id"])
    assert secret.startswith(SEALED_PREFIX) and sub["secret"] not in secret
    assert tenant.get(f"/subscriptions/{sub['id']}").json()["secret"] == sub["secret"]

    rotated = tenant.post(f"/subscriptions/{sub['id']}/rotate-secret").json()["secret"]
    secret, previous = stored(database_url, sub["id"])
    assert secret.startswith(SEALED_PREFIX) and rotated not in secret
    assert previous.startswith(SEALED_PREFIX) and sub["secret"] not in previous


def test_without_a_key_secrets_are_stored_as_given_and_both_kinds_read(tenant, env, database_url):
    plain = tenant.subscription()
    assert stored(database_url, plain["id"])[0] == plain["secret"]
    env(HOOKPOST_ENCRYPTION_KEY=generate_key())
    assert tenant.get(f"/subscriptions/{plain['id']}").json()["secret"] == plain["secret"]


def test_a_sealed_secret_never_opens_with_another_key(tenant, env):
    from hookpost.secrets_at_rest import SecretUnavailable, seal, unseal

    env(HOOKPOST_ENCRYPTION_KEY=generate_key())
    sealed = seal("whsec_x")
    env(HOOKPOST_ENCRYPTION_KEY=generate_key())
    with pytest.raises(SecretUnavailable):
        unseal(sealed)
