"""The REST API's Lambda authorizer (REQUEST type, identity: the Authorization header).

It tells API Gateway who calls, so that the usage plan throttles each application at the edge:
the admin token maps to the admin's usage key (HOOKPOST_ADMIN_USAGE_KEY, made by the template),
an `hp_` key to its application's. Whether the caller may use a route is still the ingest
function's decision (`hookpost.api.auth`): admin or application routes, another application's
id reading as a missing one, problem bodies. So every known caller is allowed on every route,
which is also what lets API Gateway cache one answer per token for the whole API.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
    APIGatewayAuthorizerResponse,
)

from hookpost.aws.usage_plans import usage_key_value
from hookpost.credentials import bearer_token, identify

ADMIN_USAGE_KEY_ENV = "HOOKPOST_ADMIN_USAGE_KEY"

logger = Logger(service="hookpost")


class Unauthorized(Exception):
    """API Gateway answers 401 (the template's UNAUTHORIZED response) when an authorizer fails
    with exactly this message; any other error is an AUTHORIZER_FAILURE."""

    def __init__(self) -> None:
        super().__init__("Unauthorized")


def authorize(event: dict[str, Any]) -> dict[str, Any]:
    """The policy and usage key of a request's bearer credential, or Unauthorized."""
    request = APIGatewayAuthorizerRequestEvent(event)
    token = bearer_token(request.headers.get("authorization") or "")
    if token is None:
        raise Unauthorized
    caller = identify(token)
    if caller is None:
        logger.info("unknown, revoked or expired key refused")
        raise Unauthorized
    if caller.application_id is None:
        principal, usage_key = "admin", os.environ[ADMIN_USAGE_KEY_ENV]
    else:
        principal = f"application/{caller.application_id}"
        usage_key = usage_key_value(caller.application_id)
    logger.info("caller identified", extra={"principal": principal})
    response = APIGatewayAuthorizerResponse.from_route_arn(
        request.method_arn, principal_id=principal, usage_identifier_key=usage_key
    )
    response.allow_all_routes()
    return response.asdict()
