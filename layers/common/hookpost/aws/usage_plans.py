"""Each application's API Gateway API key in the usage plan, which throttles it at the edge.

The API's keys come from the Lambda authorizer (ApiKeySourceType AUTHORIZER): clients never send
them, so a key's value is no credential. An application's key is named `hookpost-<id>` and its
value is the application id itself, so the authorizer derives it and nothing is stored.

Only on AWS: the template sets HOOKPOST_USAGE_PLAN_NAME on the ingest function. It names the plan
rather than giving its id because the id would make the function depend on the API's stage,
which depends on the function.
"""

from __future__ import annotations

import os
import uuid
from functools import cache
from typing import Any

USAGE_PLAN_ENV = "HOOKPOST_USAGE_PLAN_NAME"
# `name=value`: the tag each key is made with. The function's role may create only keys with it
# and delete only keys that have it (aws:RequestTag, aws:ResourceTag), not any key in the region.
USAGE_KEY_TAG_ENV = "HOOKPOST_USAGE_KEY_TAG"


def usage_key_value(application_id: uuid.UUID) -> str:
    """The value of an application's API key: what the authorizer returns as its usage key."""
    return str(application_id)


def create_application_key(application_id: uuid.UUID) -> None:
    """Create the application's API key and add it to the usage plan (nothing off AWS)."""
    plan_name = os.environ.get(USAGE_PLAN_ENV)
    if not plan_name:
        return
    client = _client()
    plan_id = _usage_plan_id(plan_name)
    key = client.create_api_key(
        name=_key_name(application_id),
        description="Hookpost application; its usage key, mapped by the authorizer",
        value=usage_key_value(application_id),
        customerId=str(application_id),
        enabled=True,
        tags=_key_tags(),
    )
    try:
        client.create_usage_plan_key(usagePlanId=plan_id, keyId=key["id"], keyType="API_KEY")
    except Exception:
        # A key outside the plan would only be clutter; the caller fails and may try again.
        client.delete_api_key(apiKey=key["id"])
        raise


def delete_application_key(application_id: uuid.UUID) -> None:
    """Delete the application's API key, which takes it out of the usage plan (nothing off AWS;
    nothing either if it has none, as an application created before the plan existed)."""
    if not os.environ.get(USAGE_PLAN_ENV):
        return
    client = _client()
    name = _key_name(application_id)
    # The name query matches by prefix: keep the exact name only.
    for key in _all_items(client, "get_api_keys", nameQuery=name):
        if key.get("name") == name:
            client.delete_api_key(apiKey=key["id"])


def _key_tags() -> dict[str, str]:
    name, _, value = (os.environ.get(USAGE_KEY_TAG_ENV) or "").partition("=")
    return {name: value} if name else {}


def _key_name(application_id: uuid.UUID) -> str:
    return f"hookpost-{application_id}"


@cache
def _usage_plan_id(plan_name: str) -> str:
    ids = [p["id"] for p in _all_items(_client(), "get_usage_plans") if p["name"] == plan_name]
    if len(ids) != 1:
        raise LookupError(f"expected one usage plan named {plan_name!r}, found {len(ids)}")
    return ids[0]


def _all_items(client: Any, operation: str, **params: Any) -> list[dict[str, Any]]:
    pages = client.get_paginator(operation).paginate(**params)
    return [item for page in pages for item in page.get("items", [])]


@cache
def _client() -> Any:
    # Imported here: boto3 takes a while to load, and only admin routes on AWS need it.
    import boto3

    return boto3.client("apigateway")
