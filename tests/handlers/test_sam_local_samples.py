"""`sam local invoke` of every function with its `events/` sample, as the README shows it: the
environment is the one the SAM CLI itself computes for the function from template.yaml and
`events/local_env.json` (what `samconfig.toml` passes), with nothing of moto and every AWS API
out of reach. So a variable that would send a function to Secrets Manager, Lambda or API
Gateway locally fails here. Only the database differs: the env file's host.docker.internal is
the test PostgreSQL."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from samcli.lib.providers.sam_function_provider import SamFunctionProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider
from samcli.local.lambdafn.env_vars import EnvironmentVariables

from hookpost.aws.custom_resource import SUCCESS
from hookpost.db.pool import close_pool
from hookpost.local.gateway import LocalLambdaContext, load_handler
from support_aws import TEMPLATE_PATH
from support_process import ROOT

# The README's lines, e.g. `sam local invoke IngestFunction -e events/ingest_health.json`.
README_INVOCATIONS = re.findall(
    r"^sam local invoke (\w+) +-e (events/\w+\.json)", (ROOT / "README.md").read_text(), re.M
)
FOLDERS = {
    "IngestFunction": "ingest",
    "AuthorizerFunction": "authorizer",
    "DeliverFunction": "deliver",
    "SchedulerFunction": "scheduler",
    "MigrateFunction": "migrate",
}


def sam_local_environment(function_id: str, database_url: str) -> dict[str, str]:
    """What `sam local invoke FUNCTION --env-vars events/local_env.json` gives the function."""
    stacks, _ = SamLocalStackProvider.get_stacks(
        str(TEMPLATE_PATH),
        parameter_overrides={"VpcId": "vpc-1", "PrivateSubnetIds": "subnet-1,subnet-2"},
    )
    function = SamFunctionProvider(stacks).get(function_id)
    overrides = json.loads((ROOT / "events" / "local_env.json").read_text())["Parameters"]
    assert "host.docker.internal" in overrides["DATABASE_URL"]
    overrides = {**overrides, "DATABASE_URL": database_url}
    return EnvironmentVariables(
        function.name,
        function.memory,
        function.timeout,
        function.handler,
        variables=function.environment["Variables"],
        override_values=overrides,
    ).resolve()


@pytest.fixture
def invoke(
    monkeypatch: pytest.MonkeyPatch, env, database_url: str
) -> Iterator[Callable[[str, dict[str, Any], LocalLambdaContext], Any]]:
    from aws_lambda_powertools.utilities import parameters

    def run(function_id: str, event: dict[str, Any], context: LocalLambdaContext) -> Any:
        # Any AWS call is refused at once: a sample must need none.
        env(
            **{
                **sam_local_environment(function_id, database_url),
                "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
            }
        )
        parameters.clear_caches()
        close_pool()
        handler = load_handler(ROOT / "functions" / FOLDERS[function_id] / "app.py")
        return handler(event, context)

    yield run
    close_pool()


def test_the_readme_invokes_every_function():
    assert {function for function, _ in README_INVOCATIONS} == set(FOLDERS)


@pytest.mark.parametrize(("function_id", "sample"), README_INVOCATIONS)
def test_each_sample_as_sam_local_invoke_runs_it(function_id, sample, invoke, cloudformation):
    event = json.loads((ROOT / sample).read_text())
    context = LocalLambdaContext(deadline_ms=int(time.time() * 1000) + 3000)
    if function_id == "MigrateFunction":
        # The answer goes to the presigned URL in the event: here a loopback stand-in for S3.
        event["ResponseURL"] = cloudformation.url
        context = LocalLambdaContext(deadline_ms=int(time.time() * 1000) + 60_000)

    answer = invoke(function_id, event, context)

    if function_id == "IngestFunction":
        assert answer["statusCode"] in {200, 201}, answer
    elif function_id == "AuthorizerFunction":
        assert answer["principalId"] == "admin"
    elif function_id == "DeliverFunction":
        assert set(answer) >= {"claimed", "succeeded"}
    elif function_id == "SchedulerFunction":
        assert answer["job"] == event["task"]
    else:
        assert answer["Status"] == SUCCESS, answer["Reason"]
