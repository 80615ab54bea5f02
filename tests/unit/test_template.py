"""template.yaml, read as CloudFormation reads it (cfn-lint's loader: !Ref, !Sub, !GetAtt...):
the shape of the deployed system, the names the code reads, least-privilege policies and the
metrics; then the template SAM makes of it (the transform, offline), which must have no
dependency cycle. `make lint` runs `sam validate --lint` besides."""

from __future__ import annotations

import graphlib
import json
import re
import tomllib
from typing import Any

import pytest

from hookpost import jobs
from hookpost.aws import authorizer, migration, usage_plans, wake
from support_aws import REGION, function_environment, load_template
from support_process import ROOT

FUNCTIONS = {
    "IngestFunction": "ingest",
    "AuthorizerFunction": "authorizer",
    "DeliverFunction": "deliver",
    "SchedulerFunction": "scheduler",
    "MigrateFunction": "migrate",
}
PUBLIC_ROUTES = {
    "/v1/health",
    "/v1/openapi.json",
    "/v1/docs",
    "/console",
    "/console/assets/{asset+}",
    # a thin delivery's fetch link: the link is the credential
    "/v1/fetch/{token}",
}
# A portal link is exchanged without a bearer token: the link is the credential.
PUBLIC_POSTS = {"/v1/portal/exchange"}
# The metrics contract: the code emits each name with exactly these dimensions.
METRICS = {
    "EventsIngested": {"service": "ingest"},
    "LimitRejections": {"service": "ingest"},
    "AttemptsClaimed": {"service": "deliver"},
    "AttemptsSucceeded": {"service": "deliver"},
    "AttemptsFailed": {"service": "deliver"},
    "AttemptsGaveUp": {"service": "deliver"},
    "AttemptsExpired": {"service": "deliver"},
    "DeliveryLatency": {"service": "deliver"},
    "Heartbeat": {"service": "deliver"},
    "BacklogDepth": {"service": "scheduler", "job": "recover_leases"},
    "OldestDueAgeSeconds": {"service": "scheduler", "job": "recover_leases"},
}
DATABASE_RESOURCES = {
    "DatabaseSecret",
    "ApplicationDatabaseSecret",
    "DatabaseSubnetGroup",
    "ProxySecurityGroup",
    "DatabaseSecurityGroup",
    "DatabaseCluster",
    "DatabaseInstance",
    "DatabaseProxyRole",
    "DatabaseProxy",
    "DatabaseProxyTargetGroup",
    "DatabaseCpuAlarm",
    "DatabaseCapacityAlarm",
    "ProxyConnectionsAlarm",
}


@pytest.fixture
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture
def resources(template) -> dict[str, Any]:
    return template["Resources"]


def properties(resources: dict[str, Any], name: str) -> dict[str, Any]:
    return resources[name]["Properties"]


def of_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {name: r for name, r in resources.items() if r["Type"] == kind}


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    return document["Statement"]


def test_every_function_is_a_thin_handler_in_its_folder(template, resources):
    assert set(of_type(resources, "AWS::Serverless::Function")) == set(FUNCTIONS)
    for name, folder in FUNCTIONS.items():
        function = properties(resources, name)
        assert (function["CodeUri"], function["Handler"]) == (
            f"functions/{folder}",
            "app.lambda_handler",
        )
        assert "def lambda_handler(" in (ROOT / "functions" / folder / "app.py").read_text()
    assert template["Globals"]["Function"]["Layers"] == [{"Ref": "CommonLayer"}]


def test_the_layer_is_built_by_its_makefile_for_the_functions_runtime(template, resources):
    layer = resources["CommonLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Metadata"] == {"BuildMethod": "makefile"}
    assert layer["Properties"]["ContentUri"] == "layers/common"
    runtime = template["Globals"]["Function"]["Runtime"]
    assert layer["Properties"]["CompatibleRuntimes"] == [runtime]
    makefile = (ROOT / "layers" / "common" / "Makefile").read_text()
    assert "build-CommonLayer:" in makefile
    assert f"PYTHON_VERSION ?= {runtime.removeprefix('python')}" in makefile
    [architecture] = template["Globals"]["Function"]["Architectures"]
    assert layer["Properties"]["CompatibleArchitectures"] == [architecture]
    platforms = re.search(r"PLATFORMS \?= (.+)", makefile).group(1).split()
    assert platforms and all(p.endswith(f"_{architecture}") for p in platforms)


def test_the_api_authorizes_with_our_bearer_keys_and_takes_usage_keys_from_the_authorizer(
    resources,
):
    api = properties(resources, "Api")
    assert api["ApiKeySourceType"] == "AUTHORIZER"
    auth = api["Auth"]
    assert (auth["DefaultAuthorizer"], auth["ApiKeyRequired"]) == ("BearerAuthorizer", True)
    bearer = auth["Authorizers"]["BearerAuthorizer"]
    assert bearer["FunctionArn"] == {"Fn::GetAtt": ["AuthorizerFunction", "Arn"]}
    assert bearer["FunctionPayloadType"] == "REQUEST"
    assert bearer["Identity"]["Headers"] == ["Authorization"]

    events = properties(resources, "IngestFunction")["Events"]
    assert all(
        e["Type"] == "Api" and e["Properties"]["RestApiId"] == {"Ref": "Api"}
        for e in events.values()
    )
    routes = {e["Properties"]["Path"]: e["Properties"] for e in events.values()}
    assert routes.pop("/{proxy+}") == {
        "RestApiId": {"Ref": "Api"},
        "Path": "/{proxy+}",
        "Method": "ANY",
    }
    assert set(routes) == PUBLIC_ROUTES | PUBLIC_POSTS
    for path, route in routes.items():
        assert route["Method"] == ("POST" if path in PUBLIC_POSTS else "GET")
        assert route["Auth"] == {"Authorizer": "NONE", "ApiKeyRequired": False}


def test_api_gateway_answers_with_problem_details(resources):
    responses = properties(resources, "Api")["GatewayResponses"]
    assert {"UNAUTHORIZED", "AUTHORIZER_FAILURE", "THROTTLED"} <= set(responses)
    for response in responses.values():
        body = json.loads(response["ResponseTemplates"]["application/json"])
        assert body["status"] == int(response["StatusCode"])
        assert set(body) == {"type", "title", "status", "detail"}
        headers = response["ResponseParameters"]["Headers"]
        assert headers["Content-Type"] == "'application/problem+json'"
    assert responses["UNAUTHORIZED"]["StatusCode"] == "401"
    assert "WWW-Authenticate" in responses["UNAUTHORIZED"]["ResponseParameters"]["Headers"]
    # The authorizer fails when PostgreSQL does: 503, as the function answers then.
    assert responses["AUTHORIZER_FAILURE"]["StatusCode"] == "503"
    assert responses["THROTTLED"]["StatusCode"] == "429"
    for name in ("AUTHORIZER_FAILURE", "THROTTLED"):
        assert "Retry-After" in responses[name]["ResponseParameters"]["Headers"]


def test_the_usage_plan_and_the_keys_the_code_names(resources):
    plan = properties(resources, "UsagePlan")
    assert plan["ApiStages"] == [{"ApiId": {"Ref": "Api"}, "Stage": {"Ref": "Api.Stage"}}]
    assert plan["Throttle"] == {
        "RateLimit": {"Ref": "ApplicationRateLimit"},
        "BurstLimit": {"Ref": "ApplicationBurstLimit"},
    }
    ingest = properties(resources, "IngestFunction")["Environment"]["Variables"]
    assert ingest[usage_plans.USAGE_PLAN_ENV] == plan["UsagePlanName"]

    admin_key = properties(resources, "AdminApiKey")
    variables = properties(resources, "AuthorizerFunction")["Environment"]["Variables"]
    assert variables[authorizer.ADMIN_USAGE_KEY_ENV] == admin_key["Value"]
    assert properties(resources, "AdminUsagePlanKey") == {
        "KeyId": {"Ref": "AdminApiKey"},
        "KeyType": "API_KEY",
        "UsagePlanId": {"Ref": "UsagePlan"},
    }


def test_deliver_runs_every_minute_and_is_woken_in_between(resources):
    deliver = properties(resources, "DeliverFunction")
    assert [e["Type"] for e in deliver["Events"].values()] == ["Schedule"]
    [schedule] = deliver["Events"].values()
    assert schedule["Properties"]["Schedule"] == "rate(1 minute)"
    # Bounded scale-out; wakes queued behind it expire, failed runs are not retried.
    assert deliver["ReservedConcurrentExecutions"] == {
        "Fn::If": [
            "ReservesDeliverConcurrency",
            {"Ref": "DeliverReservedConcurrency"},
            {"Ref": "AWS::NoValue"},
        ]
    }
    assert deliver["EventInvokeConfig"] == {
        "MaximumRetryAttempts": 0,
        "MaximumEventAgeInSeconds": 60,
    }
    # A run must outlast a request's default 15 s timeout with room to claim before it.
    assert deliver["Timeout"] >= 60
    for waker in ("IngestFunction", "SchedulerFunction"):
        waking = properties(resources, waker)
        assert waking["Environment"]["Variables"][wake.DELIVER_FUNCTION_ENV] == {
            "Ref": "DeliverFunction"
        }
        assert {"LambdaInvokePolicy": {"FunctionName": {"Ref": "DeliverFunction"}}} in waking[
            "Policies"
        ]


def test_one_schedule_per_scheduler_task_with_the_samples_input(resources):
    events = properties(resources, "SchedulerFunction")["Events"]
    assert {e["Type"] for e in events.values()} == {"Schedule"}
    inputs = [json.loads(e["Properties"]["Input"]) for e in events.values()]
    assert sorted(i["task"] for i in inputs) == sorted(jobs.JOBS)
    for task_input in inputs:
        sample = ROOT / "events" / f"scheduler_{task_input['task']}.json"
        assert json.loads(sample.read_text()) == task_input


def test_the_database_behind_rds_proxy_is_created_only_when_asked(template, resources):
    assert {n for n, r in resources.items() if r.get("Condition") == "CreatesDatabase"} == (
        DATABASE_RESOURCES
    )
    cluster = resources["DatabaseCluster"]
    assert cluster["DeletionPolicy"] == cluster["UpdateReplacePolicy"] == "Snapshot"
    assert cluster["Properties"]["Engine"] == "aurora-postgresql"
    assert set(cluster["Properties"]["ServerlessV2ScalingConfiguration"]) == {
        "MinCapacity",
        "MaxCapacity",
    }
    assert properties(resources, "DatabaseInstance")["DBInstanceClass"] == "db.serverless"
    proxy = properties(resources, "DatabaseProxy")
    assert proxy["RequireTLS"] is True
    assert proxy["Auth"][0]["SecretArn"] == {"Ref": "DatabaseSecret"}
    # PostgreSQL only from the proxy to the cluster (from the functions: test_security_groups).
    [rule] = properties(resources, "DatabaseSecurityGroup")["SecurityGroupIngress"]
    assert (rule["FromPort"], rule["ToPort"]) == (5432, 5432)
    assert rule["SourceSecurityGroupId"] == {"Ref": "ProxySecurityGroup"}
    assert "SecurityGroupIngress" not in properties(resources, "ProxySecurityGroup")
    # The functions in the private subnets, reaching the proxy created or given.
    assert template["Globals"]["Function"]["VpcConfig"] == {
        "SubnetIds": {"Ref": "PrivateSubnetIds"}
    }
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["HOOKPOST_DATABASE_HOST"] == {
        "Fn::If": [
            "CreatesDatabase",
            {"Fn::GetAtt": ["DatabaseProxy", "Endpoint"]},
            {"Ref": "ExistingProxyEndpoint"},
        ]
    }
    rule = template["Rules"]["ExistingDatabaseNamed"]
    assert {str(a["Assert"]) for a in rule["Assertions"]} == {
        str({"Fn::Not": [{"Fn::Equals": [{"Ref": name}, ""]}]})
        for name in (
            "ExistingProxyEndpoint",
            "ExistingDatabaseSecretName",
            "ExistingApplicationSecretName",
        )
    }


def test_migrations_run_before_the_functions_on_every_layer_change(resources):
    migration = resources["Migration"]
    assert migration["Type"] == "Custom::Migration"
    assert migration["Properties"]["ServiceToken"] == {"Fn::GetAtt": ["MigrateFunction", "Arn"]}
    assert migration["Properties"]["LayerVersion"] == {"Ref": "CommonLayer"}
    for name in set(FUNCTIONS) - {"MigrateFunction"}:
        assert resources[name]["DependsOn"] == "Migration"


def test_the_environment_the_code_reads(resources):
    computed = {
        "HOOKPOST_DATABASE_SECRET_ID": "db-secret",
        "HOOKPOST_DATABASE_HOST": "proxy",
        "HOOKPOST_DATABASE_NAME": "hookpost",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "HOOKPOST_ADMIN_TOKEN_SECRET_ID": "admin-secret",
        "HOOKPOST_ADMIN_USAGE_KEY": "admin-key",
        "HOOKPOST_USAGE_PLAN_NAME": "plan",
        "HOOKPOST_DELIVER_FUNCTION_NAME": "deliver",
        "HOOKPOST_LIMITS": "on",
        "HOOKPOST_DELIVERY_CONCURRENCY": "100",
        "HOOKPOST_CLEANUP_DRY_RUN": "false",
        "HOOKPOST_ENCRYPTION_KEY_SECRET_ID": "sealing-key",
        "HOOKPOST_APPLICATION_DATABASE_SECRET_ID": "app-secret",
        "HOOKPOST_USAGE_KEY_TAG": "hookpost-stack=hookpost",
        "HOOKPOST_PUBLIC_URL_PARAMETER": "/hookpost/public-url",
    }
    environments = {name: function_environment(name, **computed) for name in FUNCTIONS}
    for environment in environments.values():
        assert environment["POWERTOOLS_METRICS_NAMESPACE"] == "Hookpost"
        assert environment["HOOKPOST_ALLOW_PRIVATE_TARGETS"] == "false"
        assert environment["HOOKPOST_PREPARE_STATEMENTS"] == "false"
    # The admin token only where it is checked.
    assert {n for n, e in environments.items() if "HOOKPOST_ADMIN_TOKEN_SECRET_ID" in e} == {
        "IngestFunction",
        "AuthorizerFunction",
    }
    # The key sealing subscription secrets where they are written and where they sign.
    assert {n for n, e in environments.items() if "HOOKPOST_ENCRYPTION_KEY_SECRET_ID" in e} == {
        "IngestFunction",
        "DeliverFunction",
    }
    # What `sam local invoke --env-vars events/local_env.json` sets must be declared.
    local = json.loads((ROOT / "events" / "local_env.json").read_text())["Parameters"]
    assert set(local) <= set().union(*environments.values())


def test_functions_connect_as_the_application_role_and_only_migrate_as_the_master(
    template, resources
):
    app_secret = {
        "Fn::If": [
            "CreatesDatabase",
            {"Ref": "ApplicationDatabaseSecret"},
            {"Ref": "ExistingApplicationSecretName"},
        ]
    }
    master_secret = {
        "Fn::If": [
            "CreatesDatabase",
            {"Ref": "DatabaseSecret"},
            {"Ref": "ExistingDatabaseSecretName"},
        ]
    }
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["HOOKPOST_DATABASE_SECRET_ID"] == app_secret
    migrate = properties(resources, "MigrateFunction")["Environment"]["Variables"]
    assert migrate["HOOKPOST_DATABASE_SECRET_ID"] == master_secret
    assert migrate[migration.APPLICATION_SECRET_ENV] == app_secret
    for name in set(FUNCTIONS) - {"MigrateFunction"}:
        function = properties(resources, name)
        assert "HOOKPOST_DATABASE_SECRET_ID" not in function["Environment"]["Variables"]
        assert {"Ref": "ReadDatabaseSecretPolicy"} not in function["Policies"]
    # The proxy accepts both users, and may read both secrets.
    auth = properties(resources, "DatabaseProxy")["Auth"]
    assert [a["SecretArn"] for a in auth] == [
        {"Ref": "DatabaseSecret"},
        {"Ref": "ApplicationDatabaseSecret"},
    ]
    assert all(a["ClientPasswordAuthType"] == "POSTGRES_SCRAM_SHA_256" for a in auth)
    [read] = properties(resources, "DatabaseProxyRole")["Policies"]
    assert read["PolicyDocument"]["Statement"][0]["Resource"] == [
        {"Ref": "DatabaseSecret"},
        {"Ref": "ApplicationDatabaseSecret"},
    ]
    role = json.loads(
        properties(resources, "ApplicationDatabaseSecret")["GenerateSecretString"][
            "SecretStringTemplate"
        ]["Fn::Sub"].replace("${DatabaseName}", "hookpost")
    )
    assert (
        role["username"]
        != json.loads(
            properties(resources, "DatabaseSecret")["GenerateSecretString"]["SecretStringTemplate"]
        )["username"]
    )


def test_the_application_role_password_rotates_when_a_rotation_function_is_given(
    template, resources
):
    assert template["Conditions"]["RotatesApplicationSecret"] == {
        "Fn::And": [
            {"Condition": "CreatesDatabase"},
            {"Fn::Not": [{"Fn::Equals": [{"Ref": "DatabaseRotationLambdaArn"}, ""]}]},
        ]
    }
    rotation = resources["ApplicationSecretRotation"]
    assert rotation["Condition"] == "RotatesApplicationSecret"
    # The role exists (the migration made it) before the first rotation, at once.
    assert "Migration" in rotation["DependsOn"]
    assert rotation["Properties"]["SecretId"] == {"Ref": "ApplicationDatabaseSecret"}
    assert rotation["Properties"]["RotationRules"] == {
        "AutomaticallyAfterDays": {"Ref": "DatabaseRotationDays"}
    }
    target = properties(resources, "ApplicationSecretTarget")
    assert target["TargetId"] == {"Ref": "DatabaseCluster"}


def test_both_secrets_outlive_the_stack(resources):
    # The sealed subscription secrets and the final snapshot are unreadable without them.
    for name in ("EncryptionKeySecret", "DatabaseSecret"):
        assert resources[name]["DeletionPolicy"] == "Retain"
        assert resources[name]["UpdateReplacePolicy"] == "Retain"


def test_reserved_concurrency_is_a_parameter_reserving_nothing_by_default(template, resources):
    for function, parameter, condition in [
        ("DeliverFunction", "DeliverReservedConcurrency", "ReservesDeliverConcurrency"),
        ("IngestFunction", "IngestReservedConcurrency", "ReservesIngestConcurrency"),
        ("AuthorizerFunction", "AuthorizerReservedConcurrency", "ReservesAuthorizerConcurrency"),
    ]:
        assert template["Parameters"][parameter]["Default"] == 0
        assert template["Conditions"][condition] == {
            "Fn::Not": [{"Fn::Equals": [{"Ref": parameter}, 0]}]
        }
        assert properties(resources, function)["ReservedConcurrentExecutions"] == {
            "Fn::If": [condition, {"Ref": parameter}, {"Ref": "AWS::NoValue"}]
        }


def test_the_proxy_name_changes_with_what_replaces_it(resources):
    proxy = properties(resources, "DatabaseProxy")
    subnets = [{"Fn::Select": [i, {"Ref": "PrivateSubnetIds"}]} for i in (0, 1)]
    assert proxy["VpcSubnetIds"] == subnets
    name = json.dumps(proxy["DBProxyName"])
    # The stack's id (unique per stack) and the subnets (whose change replaces the proxy).
    assert '{"Ref": "AWS::StackId"}' in name and all(json.dumps(s) in name for s in subnets)
    assert "AWS::StackName" not in name
    # Longest: "hookpost-" 8 hex of the stack id, "-", two subnets' 17 hex digits each.
    assert len("hookpost-") + 8 + 1 + 2 * 17 <= 60


def test_the_template_checks_its_preconditions(template):
    [given, in_vpc] = template["Rules"]["SubnetsGiven"]["Assertions"]
    assert given["Assert"] == {
        "Fn::Not": [{"Fn::EachMemberEquals": [{"Ref": "PrivateSubnetIds"}, ""]}]
    }
    assert in_vpc["Assert"] == {
        "Fn::EachMemberEquals": [
            {"Fn::ValueOf": ["PrivateSubnetIds", "VpcId"]},
            {"Ref": "VpcId"},
        ]
    }


def egress(resources: dict[str, Any], group: str) -> dict[int, dict[str, Any]]:
    rules = properties(resources, group)["SecurityGroupEgress"]
    assert all(r["IpProtocol"] == "tcp" and r["FromPort"] == r["ToPort"] for r in rules)
    return {r["FromPort"]: r for r in rules}


def test_security_groups_one_per_role_with_only_the_egress_it_needs(template, resources):
    to_proxy = {
        "Fn::If": [
            "CreatesDatabase",
            {"Ref": "ProxySecurityGroup"},
            {
                "Fn::If": [
                    "OpensExistingProxy",
                    {"Ref": "ExistingProxySecurityGroupId"},
                    {"Ref": "AWS::NoValue"},
                ]
            },
        ]
    }
    groups = {
        "DeliverFunction": "DeliverSecurityGroup",
        "MigrateFunction": "MigrateSecurityGroup",
    }
    for function in FUNCTIONS:
        expected = groups.get(function, "ApplicationSecurityGroup")
        assert properties(resources, function)["VpcConfig"] == {
            "SecurityGroupIds": [{"Ref": expected}]
        }
    # Only deliver reaches the internet: receivers over HTTP and HTTPS.
    deliver = egress(resources, "DeliverSecurityGroup")
    assert set(deliver) == {443, 80, 5432}
    assert deliver[443]["CidrIp"] == deliver[80]["CidrIp"] == "0.0.0.0/0"
    application = egress(resources, "ApplicationSecurityGroup")
    assert set(application) == {443, 5432}
    assert application[443]["DestinationSecurityGroupId"] == {
        "Fn::If": ["CreatesEndpoints", {"Ref": "EndpointSecurityGroup"}, {"Ref": "AWS::NoValue"}]
    }
    migrate = egress(resources, "MigrateSecurityGroup")
    assert set(migrate) == {443, 5432}
    for group in (deliver, application, migrate):
        assert group[5432]["DestinationSecurityGroupId"] == to_proxy
    # Into the proxy's group (created or given), from each function's group.
    ingress = {
        properties(resources, name)["SourceSecurityGroupId"]["Ref"]: properties(resources, name)
        for name, r in of_type(resources, "AWS::EC2::SecurityGroupIngress").items()
        if name.startswith("ProxyIngressFrom")
    }
    assert set(ingress) == {
        "DeliverSecurityGroup",
        "ApplicationSecurityGroup",
        "MigrateSecurityGroup",
    }
    for rule in ingress.values():
        assert (rule["FromPort"], rule["ToPort"]) == (5432, 5432)
        assert rule["GroupId"] == {
            "Fn::If": [
                "OpensExistingProxy",
                {"Ref": "ExistingProxySecurityGroupId"},
                {"Ref": "ProxySecurityGroup"},
            ]
        }
    # The endpoints' group lets nothing out.
    [none] = properties(resources, "EndpointSecurityGroup")["SecurityGroupEgress"]
    assert none["CidrIp"] == "255.255.255.255/32"


def test_vpc_endpoints_spare_the_functions_but_deliver_a_nat(template, resources):
    endpoints = of_type(resources, "AWS::EC2::VPCEndpoint")
    services = {
        r["Properties"]["ServiceName"]["Fn::Sub"].rsplit(".", 1)[1]: r for r in endpoints.values()
    }
    assert set(services) == {"secretsmanager", "lambda", "apigateway", "s3"}
    for name in ("secretsmanager", "lambda", "apigateway"):
        endpoint = services[name]
        assert endpoint["Condition"] == "CreatesEndpoints"
        assert endpoint["Properties"]["VpcEndpointType"] == "Interface"
        assert endpoint["Properties"]["PrivateDnsEnabled"] is True
        assert endpoint["Properties"]["SecurityGroupIds"] == [{"Ref": "EndpointSecurityGroup"}]
    # The migration's answer is a PUT to a presigned URL of the region's S3 response bucket.
    s3 = services["s3"]
    assert s3["Properties"]["VpcEndpointType"] == "Gateway"
    assert s3["Properties"]["RouteTableIds"] == {"Ref": "PrivateRouteTableIds"}
    assert template["Parameters"]["PrivateRouteTableIds"]["Type"] == "CommaDelimitedList"
    # The migration waits for its way out (else it would hang until CloudFormation gives up).
    network = json.dumps(properties(resources, "Migration")["Network"])
    for name in ("ProxyIngressFromMigrate", "SecretsManagerEndpoint", "S3Endpoint"):
        assert f'{{"Ref": "{name}"}}' in network


def test_the_stage_is_throttled_and_logs_access(template, resources):
    api = properties(resources, "Api")
    [settings] = api["MethodSettings"]
    assert (settings["ResourcePath"], settings["HttpMethod"]) == ("/*", "*")
    assert settings["ThrottlingRateLimit"] == {"Ref": "ApiThrottleRateLimit"}
    assert settings["ThrottlingBurstLimit"] == {"Ref": "ApiThrottleBurstLimit"}
    for name in ("ApiThrottleRateLimit", "ApiThrottleBurstLimit"):
        assert template["Parameters"][name]["Default"] >= 1000
    condition, logs, off = api["AccessLogSetting"]["Fn::If"]
    assert (condition, off) == ("LogsApiAccess", {"Ref": "AWS::NoValue"})
    assert logs["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    assert "$context.requestId" in logs["Format"]
    assert template["Parameters"]["ApiAccessLogs"]["Default"] == "on"
    # API Gateway logs with the region's role: kept when the stack goes, others may use it.
    for name in ("ApiGatewayAccount", "ApiGatewayLogRole"):
        assert resources[name]["DeletionPolicy"] == "Retain"


def iam_statements(resources: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for resource in resources.values():
        props = resource.get("Properties", {})
        if "PolicyDocument" in props:
            found += statements(props["PolicyDocument"])
        for policy in props.get("Policies", []) if resource["Type"] == "AWS::IAM::Role" else []:
            found += statements(policy["PolicyDocument"])
    return found


def test_policies_are_least_privilege(resources):
    assert properties(resources, "IngestFunction")["Policies"] == [
        {"Ref": "ReadApplicationSecretPolicy"},
        {"Ref": "ReadAdminTokenPolicy"},
        {"Ref": "ReadEncryptionKeyPolicy"},
        {"LambdaInvokePolicy": {"FunctionName": {"Ref": "DeliverFunction"}}},
    ]
    assert properties(resources, "AuthorizerFunction")["Policies"] == [
        {"Ref": "ReadApplicationSecretPolicy"},
        {"Ref": "ReadAdminTokenPolicy"},
    ]
    assert properties(resources, "SchedulerFunction")["Policies"] == [
        {"Ref": "ReadApplicationSecretPolicy"},
        {"LambdaInvokePolicy": {"FunctionName": {"Ref": "DeliverFunction"}}},
    ]
    assert properties(resources, "DeliverFunction")["Policies"] == [
        {"Ref": "ReadApplicationSecretPolicy"},
        {"Ref": "ReadEncryptionKeyPolicy"},
        {"Ref": "ReadPublicUrlPolicy"},
    ]
    [statement] = statements(properties(resources, "ReadPublicUrlPolicy")["PolicyDocument"])
    assert statement["Action"] == "ssm:GetParameter"
    assert statement["Resource"]["Fn::Sub"].endswith(":parameter/${AWS::StackName}/public-url")
    public_url = properties(resources, "PublicUrlParameter")
    assert public_url["Name"] == {"Fn::Sub": "/${AWS::StackName}/public-url"}
    deliver_env = properties(resources, "DeliverFunction")["Environment"]["Variables"]
    assert deliver_env["HOOKPOST_PUBLIC_URL_PARAMETER"] == public_url["Name"]
    assert properties(resources, "MigrateFunction")["Policies"] == [
        {"Ref": "ReadDatabaseSecretPolicy"},
        {"Ref": "ReadApplicationSecretPolicy"},
    ]

    for name in (
        "ReadDatabaseSecretPolicy",
        "ReadApplicationSecretPolicy",
        "ReadAdminTokenPolicy",
        "ReadEncryptionKeyPolicy",
    ):
        [statement] = statements(properties(resources, name)["PolicyDocument"])
        assert statement["Action"] == "secretsmanager:GetSecretValue"
    assert properties(resources, "UsageKeysPolicy")["Roles"] == [{"Ref": "IngestFunctionRole"}]
    usage_keys = statements(properties(resources, "UsageKeysPolicy")["PolicyDocument"])
    assert {s["Action"] for s in usage_keys} == {
        "apigateway:GET",
        "apigateway:POST",
        "apigateway:PUT",
        "apigateway:DELETE",
    }
    adds = next(s for s in usage_keys if s["Sid"] == "AddKeysToThePlan")
    assert "/usageplans/${UsagePlan}/keys" in adds["Resource"]["Fn::Sub"]
    # Keys are made, tagged and deleted only with this stack's tag, which the code sets.
    [name, value] = ["hookpost-stack", {"Ref": "AWS::StackName"}]
    by_sid = {s["Sid"]: s for s in usage_keys}
    for sid in ("CreateKeys", "TagKeysAsTheyAreMade"):
        assert by_sid[sid]["Condition"]["StringEquals"] == {f"aws:RequestTag/{name}": value}
    assert by_sid["DeleteKeys"]["Condition"]["StringEquals"] == {f"aws:ResourceTag/{name}": value}
    variables = properties(resources, "IngestFunction")["Environment"]["Variables"]
    assert variables[usage_plans.USAGE_KEY_TAG_ENV] == {"Fn::Sub": f"{name}=${{AWS::StackName}}"}

    found = iam_statements(resources)
    assert len(found) >= 7
    for statement in found:
        assert statement["Effect"] == "Allow"
        for field in ("Action", "Resource"):
            values = statement[field] if isinstance(statement[field], list) else [statement[field]]
            assert "*" not in values, statement


def hookpost_metrics(dashboard_metrics: list[list[Any]]) -> dict[str, dict[str, str]]:
    found = {}
    for line in dashboard_metrics:
        if line[0] == "Hookpost":
            parts = [p for p in line[2:] if isinstance(p, str)]
            found[line[1]] = dict(zip(parts[::2], parts[1::2], strict=True))
    return found


def test_the_dashboard_and_alarms_show_the_metrics_the_code_emits(resources):
    body = properties(resources, "Dashboard")["DashboardBody"]["Fn::Sub"]
    widgets = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))["widgets"]
    lines = [line for w in widgets for line in w["properties"].get("metrics", [])]
    assert hookpost_metrics(lines) == METRICS
    assert {w["properties"]["title"] for w in widgets} >= {"Events ingested", "Attempts"}

    alarms = of_type(resources, "AWS::CloudWatch::Alarm")
    assert set(alarms) == {
        "GaveUpRateAlarm",
        "BacklogAlarm",
        "OldestDueAgeAlarm",
        "DeliverHeartbeatAlarm",
        "DeliverThrottlesAlarm",
        "DeliverDroppedRunsAlarm",
        "FunctionErrorsAlarm",
        "ApiServerErrorsAlarm",
        "DatabaseCpuAlarm",
        "DatabaseCapacityAlarm",
        "ProxyConnectionsAlarm",
    }
    for alarm in alarms.values():
        for query in alarm["Properties"].get("Metrics", []):
            metric = query.get("MetricStat", {}).get("Metric", {})
            if metric.get("Namespace") == "Hookpost":
                dimensions = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
                assert dimensions == METRICS[metric["MetricName"]]
    gave_up = properties(resources, "GaveUpRateAlarm")["Metrics"]
    assert {q["MetricStat"]["Metric"]["MetricName"] for q in gave_up if "MetricStat" in q} == {
        "AttemptsGaveUp",
        "AttemptsSucceeded",
    }
    backlog = properties(resources, "BacklogAlarm")
    dimensions = {d["Name"]: d["Value"] for d in backlog["Dimensions"]}
    assert (backlog["MetricName"], dimensions) == ("BacklogDepth", METRICS["BacklogDepth"])
    errors = properties(resources, "FunctionErrorsAlarm")["Metrics"]
    watched = {
        q["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Ref"]
        for q in errors
        if "MetricStat" in q
    }
    # The authorizer's refusals are errors to Lambda: its failures show as the API's 503s.
    assert watched == set(FUNCTIONS) - {"MigrateFunction", "AuthorizerFunction"}


def alarm_metric(alarm: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """A single-metric alarm's namespace, metric name and dimensions."""
    dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
    return alarm["Namespace"], alarm["MetricName"], dimensions


def notifies(alarm: dict[str, Any]) -> list[Any]:
    return alarm["AlarmActions"]


def test_every_alarm_notifies_the_email_topic_and_the_topic_given(template, resources):
    assert template["Parameters"]["AlarmTopicArn"]["Default"] == ""
    assert template["Conditions"]["NotifiesTopic"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]
    }
    for name, alarm in of_type(resources, "AWS::CloudWatch::Alarm").items():
        assert notifies(alarm["Properties"]) == [
            {"Fn::If": ["NotifiesAlarms", {"Ref": "AlarmTopic"}, {"Ref": "AWS::NoValue"}]},
            {"Fn::If": ["NotifiesTopic", {"Ref": "AlarmTopicArn"}, {"Ref": "AWS::NoValue"}]},
        ], name


def test_an_alarm_when_deliver_stops_running(resources):
    alarm = properties(resources, "DeliverHeartbeatAlarm")
    assert alarm_metric(alarm) == ("Hookpost", "Heartbeat", METRICS["Heartbeat"])
    # Deliver emits one per finished run (functions/deliver/app.py); a run starts every minute:
    # fewer than one in each of two 5-minute periods, or none reported at all, is an alarm.
    assert (alarm["Statistic"], alarm["Period"], alarm["ComparisonOperator"]) == (
        "Sum",
        300,
        "LessThanThreshold",
    )
    assert (alarm["Threshold"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (1, 2, 2)
    assert alarm["TreatMissingData"] == "breaching"
    deliver = (ROOT / "functions" / "deliver" / "app.py").read_text()
    assert 'name="Heartbeat"' in deliver


def test_alarms_when_deliver_runs_are_throttled_or_dropped(resources):
    deliver = {"FunctionName": {"Ref": "DeliverFunction"}}
    throttles = properties(resources, "DeliverThrottlesAlarm")
    assert alarm_metric(throttles) == ("AWS/Lambda", "Throttles", deliver)
    dropped = properties(resources, "DeliverDroppedRunsAlarm")
    assert alarm_metric(dropped) == ("AWS/Lambda", "AsyncEventsDropped", deliver)
    for alarm in (throttles, dropped):
        assert (alarm["Statistic"], alarm["ComparisonOperator"], alarm["Threshold"]) == (
            "Sum",
            "GreaterThanThreshold",
            0,
        )
        # Quiet periods have no data: not an alarm.
        assert alarm["TreatMissingData"] == "notBreaching"
    # A throttled wake now and then is expected: only throttles in three periods running.
    assert (throttles["EvaluationPeriods"], throttles["DatapointsToAlarm"]) == (3, 3)


def test_an_alarm_on_the_age_of_the_oldest_due_attempt(template, resources):
    alarm = properties(resources, "OldestDueAgeAlarm")
    assert alarm_metric(alarm) == (
        "Hookpost",
        "OldestDueAgeSeconds",
        METRICS["OldestDueAgeSeconds"],
    )
    assert (alarm["Statistic"], alarm["ComparisonOperator"]) == ("Maximum", "GreaterThanThreshold")
    assert alarm["Threshold"] == {"Ref": "OldestDueAgeThreshold"}
    assert template["Parameters"]["OldestDueAgeThreshold"]["Default"] == 900
    # recover_leases reports it every minute: silence means the scheduler is not running.
    assert alarm["TreatMissingData"] == "breaching"
    assert "recover_leases" in {
        rule["Properties"]["Input"].split('"')[3]
        for rule in properties(resources, "SchedulerFunction")["Events"].values()
    }


def test_alarms_on_the_database_and_its_proxy_when_the_stack_makes_them(template, resources):
    cluster = {"DBClusterIdentifier": {"Ref": "DatabaseCluster"}}
    for name in ("DatabaseCpuAlarm", "DatabaseCapacityAlarm", "ProxyConnectionsAlarm"):
        assert resources[name]["Condition"] == "CreatesDatabase", name
    cpu = properties(resources, "DatabaseCpuAlarm")
    assert alarm_metric(cpu) == ("AWS/RDS", "CPUUtilization", cluster)
    assert (cpu["ComparisonOperator"], cpu["Threshold"]) == ("GreaterThanThreshold", 90)
    capacity = properties(resources, "DatabaseCapacityAlarm")
    assert alarm_metric(capacity) == ("AWS/RDS", "ServerlessDatabaseCapacity", cluster)
    # At its largest capacity for a whole period (Minimum): it cannot scale any further.
    assert (capacity["Statistic"], capacity["ComparisonOperator"], capacity["Threshold"]) == (
        "Minimum",
        "GreaterThanOrEqualToThreshold",
        {"Ref": "DatabaseMaxCapacity"},
    )
    proxy = properties(resources, "ProxyConnectionsAlarm")
    queries = {q["Id"]: q for q in proxy["Metrics"]}
    assert queries["used"]["Expression"] == "100 * connections / allowed"
    for query, metric in (
        ("connections", "DatabaseConnections"),
        ("allowed", "MaxDatabaseConnectionsAllowed"),
    ):
        watched = queries[query]["MetricStat"]["Metric"]
        assert (watched["Namespace"], watched["MetricName"]) == ("AWS/RDS", metric)
        assert watched["Dimensions"] == [{"Name": "ProxyName", "Value": {"Ref": "DatabaseProxy"}}]
    assert (proxy["ComparisonOperator"], proxy["Threshold"]) == ("GreaterThanThreshold", 90)


def test_tracing_and_logs(template, resources):
    assert template["Globals"]["Function"]["Tracing"] == {"Ref": "Tracing"}
    assert template["Parameters"]["Tracing"]["AllowedValues"] == ["Active", "Disabled"]
    assert properties(resources, "Api")["TracingEnabled"] == {
        "Fn::If": ["TracingEnabled", True, False]
    }
    for name in FUNCTIONS:
        log_group = properties(resources, name)["LoggingConfig"]["LogGroup"]["Ref"]
        assert properties(resources, log_group)["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_samconfig_defaults_name_template_parameters(template):
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    deploy = config["default"]["deploy"]["parameters"]
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    overrides = dict(re.findall(r'(\w+)="([^"]*)"', deploy["parameter_overrides"]))
    assert overrides and set(overrides) <= set(template["Parameters"])
    for name, value in overrides.items():
        allowed = template["Parameters"][name].get("AllowedValues")
        assert allowed is None or value in [str(a) for a in allowed]
        # What `sam deploy --guided` offers is the saved value: none may undo a safe default.
        assert value == str(template["Parameters"][name]["Default"]), name


def transformed(template: dict[str, Any]) -> dict[str, Any]:
    """What SAM turns the template into (as `sam deploy` has CloudFormation do), offline."""
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    for resource in template["Resources"].values():
        for key in ("CodeUri", "ContentUri"):
            if key in resource.get("Properties", {}):
                resource["Properties"][key] = "s3://bucket/code.zip"
    parameters = {"VpcId": "vpc-1", "PrivateSubnetIds": ["subnet-1", "subnet-2"]}
    return transform(template, parameters, NoManagedPolicies())


def references(value: Any, names: set[str]) -> set[str]:
    """The resources a part of a template refers to (Ref, GetAtt, Sub)."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= references(item, names)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref" and item in names:
                found.add(item)
            elif key == "Fn::GetAtt":
                found.add(item[0] if isinstance(item, list) else item.split(".")[0])
            elif key == "Fn::Sub":
                text = item[0] if isinstance(item, list) else item
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text)} & names
            found |= references(item, names)
    return found & names


def test_the_transformed_template_has_no_dependency_cycle(template, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    resources = transformed(template)["Resources"]
    names = set(resources)
    graph = {}
    for name, resource in resources.items():
        depends_on = resource.get("DependsOn", [])
        depends_on = [depends_on] if isinstance(depends_on, str) else depends_on
        graph[name] = references(resource.get("Properties", {}), names) | set(depends_on)
    list(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError on a cycle

    paths = resources["Api"]["Properties"]["Body"]["paths"]
    proxy = paths["/{proxy+}"]["x-amazon-apigateway-any-method"]
    assert proxy["security"] == [{"BearerAuthorizer": []}, {"api_key": []}]
    assert {path for path, m in paths.items() if m.get("get", {}).get("security") == []} == (
        PUBLIC_ROUTES
    )
    # Each generated role: the Lambda basics, the VPC, and what the template listed.
    deliver_role = resources["DeliverFunctionRole"]["Properties"]
    assert deliver_role["ManagedPolicyArns"] == [
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
        {"Ref": "ReadApplicationSecretPolicy"},
        {"Ref": "ReadEncryptionKeyPolicy"},
        {"Ref": "ReadPublicUrlPolicy"},
    ]
    assert "Policies" not in deliver_role
    # A function's own security group replaces the Globals' one; the subnets stay.
    vpc = resources["DeliverFunction"]["Properties"]["VpcConfig"]
    assert vpc == {
        "SubnetIds": {"Ref": "PrivateSubnetIds"},
        "SecurityGroupIds": [{"Ref": "DeliverSecurityGroup"}],
    }
