"""Schemathesis against our own OpenAPI document, as each kind of client: no 5xx, and every
error a problem body. Bounded and derandomized so `make test` stays fast and repeatable."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hookpost.local.gateway import wsgi_app
from support import ADMIN, Tenant, create_tenant

# What every answer must satisfy; the auth-probing checks do not apply, since the test sends
# valid credentials on purpose.
CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def fuzz_tenant(api) -> Tenant:
    tenant = create_tenant(api, "fuzzed")
    tenant.event_type("invoice.paid", schema={"type": "object"})
    tenant.subscription()
    tenant.send()
    return tenant


def problem_bodies_for_errors(response) -> None:
    if response.status_code >= 400:
        content_type = response.headers["content-type"]
        content_type = content_type[0] if isinstance(content_type, list) else content_type
        assert content_type.startswith("application/problem+json"), response.text
        body = response.json()
        assert {"type", "title", "status", "detail"} <= body.keys()
        assert body["status"] == response.status_code


def is_admin_route(path: str) -> bool:
    return path.count("/") <= 3 or "/api-keys" in path


def test_api_as_its_clients(api, ingest_handler, fuzz_tenant):
    schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", wsgi_app(ingest_handler))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25
    # Admin routes act on an application of their own, deleted last, so the tenant's key lives.
    managed = create_tenant(api, "managed")
    operations.sort(key=lambda op: op.method.upper() == "DELETE" and is_admin_route(op.path))

    for operation in operations:
        admin_route = is_admin_route(operation.path)
        exercise(
            operation,
            headers=ADMIN if admin_route else fuzz_tenant.headers,
            app_id=managed.id if admin_route else fuzz_tenant.id,
        )


def exercise(operation, headers: dict[str, str], app_id: str) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=10,
        derandomize=True,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def run(case) -> None:
        if "app_id" in (case.path_parameters or {}):
            case.path_parameters["app_id"] = app_id
        response = case.call(headers=headers)
        assert response.status_code < 500, (case.method, case.formatted_path, response.text)
        problem_bodies_for_errors(response)
        case.validate_response(response, checks=CONFORMANCE)

    run()
