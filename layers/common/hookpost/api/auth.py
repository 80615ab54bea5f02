"""Which credential a route needs, from its path alone: the admin token for applications and
their keys, a key of that very application for the routes under it. Who a token is comes from
`hookpost.credentials`; this reads the Authorization header and answers 401, 403 or 404."""

from __future__ import annotations

from collections.abc import Callable

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter

from hookpost.api import scope
from hookpost.api.responses import Problem
from hookpost.credentials import Caller, bearer_token, identify
from hookpost.errors import NotFound
from hookpost.ids import parse_uuid
from hookpost.ingest import Checks


class Deferred:
    """The current request's API key and rate limits when the ingest statement checks them
    itself (`hookpost.api.app` decides), in a class attribute as powertools keeps the request:
    one request at a time per process."""

    checks: Checks | None = None


def authorize(app: BaseRouter) -> None:
    """Raise what a request's credentials earn on its path, or return when it may go on.

    /v1/applications[/{id}[/api-keys...]] need the admin token; any other route under
    /v1/applications/{id}/ needs a key of that very application (another application's id reads
    exactly as a missing one: 404), or for some a portal session of it (`scope`). /v1/metrics
    needs the admin token too. Everything else is public.
    """
    parts = app.current_event.path.strip("/").split("/")
    metrics = parts == ["v1", "metrics"]
    if parts[:2] != ["v1", "applications"] and not metrics:
        return
    admin_route = metrics or len(parts) <= 3 or parts[3] == "api-keys"
    caller = _caller(app)
    if caller is None:
        raise unauthorized("invalid token" if admin_route else "invalid or revoked API key")
    if admin_route != caller.is_admin:
        needed = "the admin token" if admin_route else "an application API key"
        raise Problem(403, f"this route needs {needed}", slug="forbidden")
    if not admin_route and parse_uuid(parts[2]) != caller.application_id:
        raise NotFound("application")
    if caller.is_portal:
        method = app.current_event.http_method
        scope.admit(app, method, caller.application_id, parts[3:], caller.portal_labels)


def authorize_middleware(
    app: BaseRouter, next_middleware: Callable[[BaseRouter], Response]
) -> Response:
    if Deferred.checks is None:
        authorize(app)
    return next_middleware(app)


def _caller(app: BaseRouter) -> Caller | None:
    token = bearer_token(app.current_event.headers.get("authorization") or "")
    if token is None:
        raise unauthorized("a bearer token is required")
    return identify(token)


def unauthorized(detail: str) -> Problem:
    return Problem(
        401, detail, slug="unauthorized", headers={"WWW-Authenticate": 'Bearer realm="hookpost"'}
    )
