"""The resolver: every Router joined under /v1, one map from exceptions to problem bodies, and
`handle`, the function the ingest Lambda (and `make dev`'s HTTP server) calls per request."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import psycopg
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter, ResponseBuilder
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from hookpost import __version__, limits
from hookpost.api import openapi
from hookpost.api.auth import Deferred, authorize, authorize_middleware, unauthorized
from hookpost.api.responses import (
    PROBLEM_CONTENT_TYPE,
    Problem,
    field_error,
    problem_body,
    problem_response,
)
from hookpost.api.routes import (
    applications,
    attempts,
    console,
    event_types,
    events,
    fetch,
    health,
    metrics,
    portal_sessions,
    stats,
    subscriptions,
)
from hookpost.config import get_settings
from hookpost.credentials import API_KEY_PREFIX, bearer_token, hash_api_key
from hookpost.db.pool import DatabaseUnavailable
from hookpost.errors import Conflict, Invalid, NotFound, TooLarge
from hookpost.ingest import Checks, Refused
from hookpost.proxy_events import event_header

logger = Logger(service="hookpost")

# Constraint names, as the migrations spell them, and what they mean to an API client.
CONSTRAINT_PROBLEMS = {
    "events_idempotency_key": (409, "an event with this event_id is being stored; send it again"),
    "event_types_pkey": (409, "this event type already exists"),
    "api_keys_key_hash_key": (409, "key collision; create the key again"),
}


def build_resolver() -> APIGatewayRestResolver:
    """A resolver with every route. Powertools keeps the current request in class attributes,
    so a process serves one request at a time, as on Lambda (`make dev` runs several)."""
    resolver = APIGatewayRestResolver(enable_validation=True)
    resolver.use([authorize_middleware])
    for module in (
        health,
        applications,
        event_types,
        subscriptions,
        events,
        attempts,
        stats,
        portal_sessions,
        metrics,
        fetch,
    ):
        resolver.include_router(module.router, prefix="/v1")
    resolver.include_router(console.router)
    resolver.configure_openapi(
        title="Hookpost",
        version=__version__,
        summary="Webhook delivery: send events, Hookpost signs and delivers them to subscriptions.",
    )
    resolver.get("/v1/openapi.json", include_in_schema=False)(lambda: openapi.json_route(resolver))
    resolver.get("/v1/docs", include_in_schema=False)(lambda: openapi.docs_route(resolver))

    @resolver.exception_handler(RequestValidationError)
    def invalid_request(exc: RequestValidationError) -> Response:
        # Validation runs before any middleware; credentials still decide first (for an
        # ingest, with its limits, once the resolver has answered: `_answer`).
        if Deferred.checks is not None:
            return _validation_problem(exc)
        try:
            authorize(resolver)
        except Exception as refused:
            return _handled(refused)
        return _validation_problem(exc)

    @resolver.not_found
    def no_route(exc: NotFoundError) -> Response:
        allowed = _methods_at(resolver, resolver.current_event.path)
        if not allowed:
            return problem_response(404, "no such route", slug="not-found")
        return problem_response(
            405,
            f"{resolver.current_event.http_method} is not allowed here; use {', '.join(allowed)}",
            slug="method-not-allowed",
            headers={"Allow": ", ".join(allowed)},
        )

    for exception, handler in EXCEPTION_HANDLERS.items():
        resolver.exception_handler(exception)(handler)
    return resolver


def _methods_at(resolver: APIGatewayRestResolver, path: str) -> list[str]:
    """The methods of the routes matching a path. Powertools reports a known path asked with
    another method exactly as an unknown one; only its route table tells them apart."""
    routes = resolver._static_routes + resolver._dynamic_routes
    return sorted({route.method for route in routes if route.rule.match(path)})


def _validation_problem(exc: RequestValidationError) -> Response:
    errors = exc.errors()
    if any(error.get("type") == "json_invalid" for error in errors):
        return problem_response(400, "the request body is not valid JSON", slug="malformed-json")
    if any(error["loc"][:1] == ("path",) for error in errors):
        return problem_response(404, "no such resource", slug="not-found")
    fields = [field_error(_field_name(error["loc"]), error["msg"]) for error in errors]
    detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
    return problem_response(422, detail, slug="validation", errors=fields)


def _problem(exc: Problem) -> Response:
    return exc.to_response()


def _not_found(exc: NotFound) -> Response:
    return problem_response(404, exc.detail, slug="not-found")


def _invalid(exc: Invalid) -> Response:
    fields = [field_error(error.field, error.message) for error in exc.errors]
    return problem_response(422, exc.detail, slug="validation", errors=fields)


def _conflict(exc: Conflict) -> Response:
    return problem_response(409, exc.detail, slug="conflict")


def _too_large(exc: TooLarge) -> Response:
    return problem_response(413, exc.detail, slug="payload-too-large")


def _database_unavailable(exc: DatabaseUnavailable) -> Response:
    logger.warning("database unavailable", extra={"error": str(exc)})
    return problem_response(
        503,
        "the database is unavailable; retry shortly",
        slug="unavailable",
        headers={"Retry-After": "5"},
    )


def _integrity(exc: psycopg.errors.IntegrityError) -> Response:
    constraint = exc.diag.constraint_name or ""
    status, detail = CONSTRAINT_PROBLEMS.get(
        constraint, (409, "the request conflicts with stored data")
    )
    return problem_response(status, detail, slug="conflict")


def _unstorable(exc: psycopg.errors.DataError) -> Response:
    # Values JSON allows but PostgreSQL refuses (a NUL character, a number out of range).
    detail = str(exc).splitlines()[0] if str(exc) else "a value cannot be stored"
    return problem_response(422, detail, slug="validation", errors=[field_error("body", detail)])


def _refused(exc: Refused) -> Response:
    checks = exc.checks
    if checks.outcome == "throttled":
        return _throttled(
            limits.Throttled(limits.retry_after(checks.retry_after_s), checks.exhausted)
        )
    if checks.outcome == "unauthorized":
        return unauthorized("invalid or revoked API key").to_response()
    return _not_found(NotFound("application"))


def _throttled(throttled: limits.Throttled) -> Response:
    headers = {"Retry-After": str(throttled.retry_after_s)}
    return problem_response(429, throttled.detail, slug="rate-limited", headers=headers)


def _unexpected(exc: Exception) -> Response:
    logger.exception("unhandled error")
    return problem_response(500, "internal error", slug="internal")


# The one map from what can go wrong to what the client is told (the most specific class of an
# exception that it names decides).
EXCEPTION_HANDLERS: dict[type[Exception], Callable[[Any], Response]] = {
    Problem: _problem,
    NotFound: _not_found,
    Invalid: _invalid,
    Conflict: _conflict,
    TooLarge: _too_large,
    Refused: _refused,
    DatabaseUnavailable: _database_unavailable,
    psycopg.errors.IntegrityError: _integrity,
    psycopg.errors.DataError: _unstorable,
    Exception: _unexpected,
}


def _handled(exc: Exception) -> Response:
    """The map's answer to an exception caught outside a route."""
    handler = next(EXCEPTION_HANDLERS[c] for c in type(exc).__mro__ if c in EXCEPTION_HANDLERS)
    return handler(exc)


resolver = build_resolver()


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Answer one API Gateway (REST, proxy) event."""
    return _newline_terminated(_answer(event, context))


def _answer(event: dict[str, Any], context: Any) -> dict[str, Any]:
    too_large = _body_too_large(event)
    checks = None if too_large else _ingest_checks(event)
    Deferred.checks = checks
    if checks is None:
        throttled = limits.check(event)
        if throttled:
            headers = {"Retry-After": str(throttled.retry_after_s)}
            return _early_problem(429, throttled.detail, "rate-limited", headers)
    if too_large:
        return _early_problem(413, too_large, "payload-too-large")
    if event.get("body") and not _is_json(event):
        # Everything is JSON here; a client that forgot the header (curl -d) still means JSON.
        headers = {
            k: v for k, v in (event.get("headers") or {}).items() if k.lower() != "content-type"
        }
        event = {**event, "headers": {**headers, "Content-Type": "application/json"}}
        event.pop("multiValueHeaders", None)
    response = _direct(event, context) if checks is not None else None
    if response is None:
        response = resolver.resolve(event, context)
    if checks is not None and checks.outcome is None:
        return _checked_late(event, response)
    return response


def _direct(event: dict[str, Any], context: Any) -> dict[str, Any] | None:
    """An ingest its route accepts, answered as the resolver would without its per-request work
    (`events.direct`); None for the resolver to answer."""
    answer = events.direct(event)
    if answer is None:
        return None
    # Where the resolver keeps the request, for whatever reads it as the routes do (`authorize`).
    request = APIGatewayProxyEvent(event)
    BaseRouter.current_event = request
    BaseRouter.lambda_context = context
    try:
        response = answer()
    except Exception as exc:
        response = _handled(exc)
    return ResponseBuilder(response, serializer=resolver._serializer).build(request)


# An event ingest: what the ingest statement can check itself (`Checks`).
_INGEST_PATH = re.compile(r"/v1/applications/[^/]+/events(/batch)?/?")


def _ingest_checks(event: dict[str, Any]) -> Checks | None:
    """The key and limits of an ingest request with an application key, for the ingest statement
    to check in the same round trip as it stores; None for any other request (checked first)."""
    if event.get("httpMethod") != "POST" or not _INGEST_PATH.fullmatch(event.get("path") or ""):
        return None
    token = bearer_token(event_header(event, "authorization"))
    if not token or not token.startswith(API_KEY_PREFIX) or token == get_settings().admin_token:
        return None
    settings = get_settings().limits
    key_hash = hash_api_key(token)
    wanted = limits.buckets(event, settings.scopes, key_hash) if settings.enabled else {}
    return Checks(key_hash, wanted)


def _checked_late(event: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """An ingest answered before its statement ran (invalid, say): its limits and key are
    checked now, in the order every request has them, and their refusal is the answer."""
    throttled = limits.check(event)
    if throttled:
        headers = {"Retry-After": str(throttled.retry_after_s)}
        return _early_problem(429, throttled.detail, "rate-limited", headers)
    try:
        authorize(resolver)
    except Problem as refused:
        return _early_problem(refused.status, refused.detail, refused.slug or "", refused.headers)
    except NotFound as missing:
        return _early_problem(404, missing.detail, "not-found")
    except (DatabaseUnavailable, psycopg.Error):
        pass  # the route's answer stands: it could not reach the database either, or will say
    return response


def _early_problem(
    status: int, detail: str, slug: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """A problem answered before the resolver sees the request, as a proxy response."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": PROBLEM_CONTENT_TYPE, **(headers or {})},
        "body": json.dumps(problem_body(status, detail, slug=slug)),
        "isBase64Encoded": False,
    }


def _newline_terminated(response: dict[str, Any]) -> dict[str, Any]:
    """Every JSON answer, problems included, ends with a newline: a shell prompt after `curl`
    then starts on a line of its own, and line-oriented tools see a whole line."""
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers.setdefault(name.lower(), values[-1])
    body = response.get("body")
    if "json" in headers.get("content-type", "") and body and not response.get("isBase64Encoded"):
        response["body"] = body + "\n"
    return response


def _is_json(event: dict[str, Any]) -> bool:
    return "json" in event_header(event, "content-type").lower()


def _body_too_large(event: dict[str, Any]) -> str | None:
    body = event.get("body") or ""
    settings = get_settings()
    batch = (event.get("path") or "").rstrip("/").endswith("/events/batch")
    limit = settings.max_batch_bytes if batch else settings.max_event_bytes
    size = len(body) * 3 // 4 if event.get("isBase64Encoded") else len(body.encode())
    if size > limit:
        return f"the request body is over the {limit} byte limit"
    return None


def _field_name(loc: tuple[Any, ...]) -> str:
    name = ""
    for part in loc[1:] if loc[:1] in (("body",), ("query",)) else loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"
