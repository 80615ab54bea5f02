"""The authorizer Lambda invoked with `events/authorizer_request.json`, as `sam local invoke`
does: the environment the template gives it, its secrets in moto, the real PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator

import psycopg
import pytest

from hookpost.db.pool import close_pool
from hookpost.local.gateway import LocalLambdaContext, load_handler
from support import create_tenant
from support_aws import create_secrets, function_environment
from support_process import ROOT

ADMIN_USAGE_KEY = "hookpost-admin-hookpost-eu-west-1"
SAMPLE_TOKEN = "local-admin-token"  # what the sample sends, as events/ingest_* do
ALL_ROUTES = "arn:aws:execute-api:eu-west-1:123456789012:1234567890/prod/*/*"


def sample(token: str | None = SAMPLE_TOKEN) -> dict:
    event = json.loads((ROOT / "events" / "authorizer_request.json").read_text())
    for headers in (event["headers"], event["multiValueHeaders"]):
        headers.pop("Authorization")
        if token is not None:
            value = f"Bearer {token}"
            headers["Authorization"] = value if headers is event["headers"] else [value]
    return event


@pytest.fixture
def tenant(api):
    """Made before the template's environment replaces the tests' admin token."""
    return create_tenant(api)


@pytest.fixture
def authorizer(aws, env, database_url, tenant) -> Iterator:
    values = create_secrets(database_url, admin_token=SAMPLE_TOKEN)
    env(
        **function_environment(
            "AuthorizerFunction", **values, HOOKPOST_ADMIN_USAGE_KEY=ADMIN_USAGE_KEY
        )
    )
    # The pool opens again with the URL built from the secret, as in a new container.
    close_pool()
    yield load_handler(ROOT / "functions" / "authorizer" / "app.py")
    close_pool()


def test_the_admin_token_maps_to_the_admin_usage_key(authorizer):
    answer = authorizer(sample(), LocalLambdaContext())
    assert answer == {
        "principalId": "admin",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": [ALL_ROUTES]}
            ],
        },
        "usageIdentifierKey": ADMIN_USAGE_KEY,
    }


def test_an_application_key_maps_to_its_application_usage_key(authorizer, tenant):
    answer = authorizer(sample(tenant.key), LocalLambdaContext())
    assert answer["principalId"] == f"application/{tenant.id}"
    assert answer["usageIdentifierKey"] == tenant.id
    # API Gateway caches the answer per token for every route: it must allow them all.
    assert answer["policyDocument"]["Statement"][0]["Resource"] == [ALL_ROUTES]


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer hp_not-a-key", "Bearer not-the-admin-token", f"Basic {SAMPLE_TOKEN}", "Bearer "],
)
def test_anything_else_is_unauthorized(authorizer, authorization):
    event = sample()
    for headers in (event["headers"], event["multiValueHeaders"]):
        headers.pop("Authorization")
    if authorization is not None:
        event["headers"]["Authorization"] = authorization
    # Exactly this message makes API Gateway answer 401.
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer(event, LocalLambdaContext())


def test_a_revoked_key_is_unauthorized(authorizer, api, tenant):
    keys = api.get(tenant.path("/api-keys"), headers={"Authorization": f"Bearer {SAMPLE_TOKEN}"})
    key_id = keys.json()["data"][0]["id"]
    admin = {"Authorization": f"Bearer {SAMPLE_TOKEN}"}
    assert api.delete(tenant.path(f"/api-keys/{key_id}"), headers=admin).status_code == 204
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer(sample(tenant.key), LocalLambdaContext())


def test_an_expired_key_is_unauthorized(authorizer, database_url, tenant):
    assert authorizer(sample(tenant.key), LocalLambdaContext())["principalId"].startswith("app")
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE api_keys SET expires_at = now() - interval '1 second'"
            " WHERE application_id = %s",
            (tenant.id,),
        )
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer(sample(tenant.key), LocalLambdaContext())


def test_an_unreachable_database_is_a_failure_not_a_refusal(authorizer, env, tenant):
    env(HOOKPOST_DATABASE_HOST="/nonexistent", HOOKPOST_DB_CONNECT_TIMEOUT_S="1")
    close_pool()
    # Any error but "Unauthorized" is AUTHORIZER_FAILURE: 503 with Retry-After (template.yaml).
    with pytest.raises(Exception) as failure:
        authorizer(sample(tenant.key), LocalLambdaContext())
    assert str(failure.value) != "Unauthorized"
