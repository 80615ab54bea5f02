"""Waking the deliver function (moto's Lambda): asynchronous, at most once per interval per
container, never failing its caller, and nothing off AWS."""

from __future__ import annotations

import io
import json
import zipfile

import boto3
import pytest

from hookpost.aws import wake

FUNCTION = "hookpost-DeliverFunction"


@pytest.fixture(autouse=True)
def never_woken(monkeypatch):
    monkeypatch.setattr(wake, "_last_wake", float("-inf"))


@pytest.fixture
def invocations(aws, env, monkeypatch) -> list[dict]:
    """The deliver function in moto, named as the template names it; records each invocation
    on its way to moto."""
    role = boto3.client("iam").create_role(
        RoleName="deliver", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17"})
    )
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "def lambda_handler(event, context):\n    return {}\n")
    boto3.client("lambda").create_function(
        FunctionName=FUNCTION,
        Runtime="python3.12",
        Role=role["Role"]["Arn"],
        Handler="app.lambda_handler",
        Code={"ZipFile": code.getvalue()},
    )
    env(HOOKPOST_DELIVER_FUNCTION_NAME=FUNCTION)
    client, calls = wake._client(), []
    invoke = client.invoke

    def recorded(**params):
        calls.append(params)
        return invoke(**params)

    monkeypatch.setattr(client, "invoke", recorded)
    return calls


def test_a_wake_is_an_asynchronous_invocation_with_the_wake_event(invocations):
    assert wake.wake_deliver() == 1
    assert invocations == [
        {
            "FunctionName": FUNCTION,
            "InvocationType": "Event",
            "Payload": json.dumps(wake.WAKE_EVENT).encode(),
        }
    ]


def test_a_container_wakes_once_per_interval(invocations, env):
    assert wake.wake_deliver() == 1
    assert wake.wake_deliver() == 0
    env(HOOKPOST_DELIVER_WAKE_INTERVAL_S="0")
    assert wake.wake_deliver() == 1
    assert len(invocations) == 2


def test_several_copies_for_a_deep_backlog(invocations):
    assert wake.wake_deliver(copies=3) == 3
    assert len(invocations) == 3


def test_a_failed_wake_does_not_fail_the_caller(invocations, monkeypatch):
    client = wake._client()

    def throttled(**params):
        raise client.exceptions.TooManyRequestsException({"Error": {}}, "Invoke")

    monkeypatch.setattr(client, "invoke", throttled)
    assert wake.wake_deliver(copies=2) == 0


def test_off_aws_nothing_is_invoked():
    # No moto and no credentials: an invocation would fail.
    assert wake.wake_deliver() == 0


def test_writing_attempts_wakes_the_deliver_function(invocations, env, tenant):
    env(HOOKPOST_DELIVER_WAKE_INTERVAL_S="0")
    tenant.event_type()
    tenant.send(event_id="no-subscription-yet")
    assert invocations == [], "no attempt written, nothing to wake"
    tenant.subscription()
    sent = tenant.send(event_id="first")
    assert len(invocations) == 1
    tenant.send(event_id="first")
    assert len(invocations) == 1, "a duplicate writes nothing"
    tenant.post(f"/events/{sent['id']}/replay")
    attempt = tenant.get("/attempts").json()["data"][0]
    tenant.post(f"/attempts/{attempt['id']}/retry")
    assert len(invocations) == 3
