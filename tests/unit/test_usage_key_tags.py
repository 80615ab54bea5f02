"""Application keys carry the stack's tag: the ingest function's role may create only keys with
it and delete only keys that have it (template.yaml's UsageKeysPolicy), so it never touches
another stack's or application's keys in the region."""

from __future__ import annotations

import uuid

import boto3

from hookpost.aws import usage_plans


def test_keys_are_made_with_the_tag_the_policy_requires(aws, env):
    plan = boto3.client("apigateway").create_usage_plan(name="hookpost-applications")
    env(
        HOOKPOST_USAGE_PLAN_NAME="hookpost-applications",
        HOOKPOST_USAGE_KEY_TAG="hookpost-stack=hookpost",
    )
    application_id = uuid.uuid4()

    usage_plans.create_application_key(application_id)

    [key] = boto3.client("apigateway").get_api_keys()["items"]
    assert key["name"] == f"hookpost-{application_id}"
    assert key["tags"] == {"hookpost-stack": "hookpost"}
    in_plan = boto3.client("apigateway").get_usage_plan_keys(usagePlanId=plan["id"])["items"]
    assert [k["id"] for k in in_plan] == [key["id"]]
