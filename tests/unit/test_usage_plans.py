"""Each application's API Gateway key in the usage plan (moto), directly and through the admin
routes; and nothing of it where the template's environment does not name a plan."""

from __future__ import annotations

import uuid

import boto3
import pytest
from botocore.stub import Stubber

from hookpost.aws import usage_plans
from support import ADMIN

PLAN = "hookpost-applications"


@pytest.fixture
def plan(aws, env) -> str:
    """A usage plan as the template makes it, named in the environment as the template does."""
    client = boto3.client("apigateway")
    plan_id = client.create_usage_plan(name=PLAN, throttle={"rateLimit": 100, "burstLimit": 200})
    env(HOOKPOST_USAGE_PLAN_NAME=PLAN)
    return plan_id["id"]


def keys_in_plan(plan_id: str) -> dict[str, str]:
    """Key name -> key value of every key in the plan."""
    client = boto3.client("apigateway")
    in_plan = {k["id"] for k in client.get_usage_plan_keys(usagePlanId=plan_id)["items"]}
    keys = client.get_api_keys(includeValues=True)["items"]
    return {k["name"]: k["value"] for k in keys if k["id"] in in_plan}


def all_key_names() -> set[str]:
    return {k["name"] for k in boto3.client("apigateway").get_api_keys()["items"]}


def test_an_application_key_is_made_in_the_plan_with_the_application_id_as_value(plan):
    application_id = uuid.uuid4()
    usage_plans.create_application_key(application_id)
    assert keys_in_plan(plan) == {f"hookpost-{application_id}": str(application_id)}
    assert usage_plans.usage_key_value(application_id) == str(application_id)


def test_deleting_removes_the_key_and_only_it(plan):
    kept, deleted = uuid.uuid4(), uuid.uuid4()
    usage_plans.create_application_key(kept)
    usage_plans.create_application_key(deleted)
    usage_plans.delete_application_key(deleted)
    assert all_key_names() == {f"hookpost-{kept}"}
    assert list(keys_in_plan(plan)) == [f"hookpost-{kept}"]


def test_deleting_an_application_that_has_no_key_is_fine(plan):
    usage_plans.delete_application_key(uuid.uuid4())
    assert all_key_names() == set()


def test_a_plan_that_cannot_be_found_fails_before_any_key_is_made(aws, env):
    env(HOOKPOST_USAGE_PLAN_NAME="no-such-plan")
    with pytest.raises(LookupError, match="no-such-plan"):
        usage_plans.create_application_key(uuid.uuid4())
    assert all_key_names() == set()


def test_a_key_the_plan_refuses_is_not_left_behind(plan, monkeypatch):
    client = usage_plans._client()

    def refuse(**params: str) -> None:
        raise client.exceptions.LimitExceededException({"Error": {}}, "CreateUsagePlanKey")

    monkeypatch.setattr(client, "create_usage_plan_key", refuse)
    with pytest.raises(client.exceptions.LimitExceededException):
        usage_plans.create_application_key(uuid.uuid4())
    assert all_key_names() == set()


def test_off_aws_nothing_is_called(aws, monkeypatch):
    # No plan named, as off AWS: the client, behind which moto stands anyway, has no answer
    # stubbed, so any call would raise.
    monkeypatch.delenv(usage_plans.USAGE_PLAN_ENV, raising=False)
    with Stubber(usage_plans._client()):
        usage_plans.create_application_key(uuid.uuid4())
        usage_plans.delete_application_key(uuid.uuid4())
    assert all_key_names() == set()


def test_the_admin_routes_create_and_delete_the_key(plan, api):
    created = api.post("/v1/applications", headers=ADMIN, json={"name": "shop"})
    assert created.status_code == 201, created.text
    application_id = created.json()["id"]
    assert keys_in_plan(plan) == {f"hookpost-{application_id}": application_id}

    assert api.delete(f"/v1/applications/{application_id}", headers=ADMIN).status_code == 204
    assert all_key_names() == set()


def test_an_application_whose_key_fails_is_not_stored(aws, env, api):
    env(HOOKPOST_USAGE_PLAN_NAME="no-such-plan")
    name = f"unkeyed-{uuid.uuid4()}"
    response = api.post("/v1/applications", headers=ADMIN, json={"name": name})
    assert response.status_code == 500
    listed = api.get("/v1/applications", headers=ADMIN, params={"limit": 200}).json()["data"]
    assert name not in {application["name"] for application in listed}


def test_an_application_whose_key_cannot_be_deleted_is_kept(plan, api, monkeypatch):
    application_id = api.post("/v1/applications", headers=ADMIN, json={"name": "kept"}).json()["id"]

    def refuse(application_id: uuid.UUID) -> None:
        raise RuntimeError("API Gateway is unavailable")

    monkeypatch.setattr(usage_plans, "delete_application_key", refuse)
    assert api.delete(f"/v1/applications/{application_id}", headers=ADMIN).status_code == 500
    assert api.get(f"/v1/applications/{application_id}", headers=ADMIN).status_code == 200
