"""Subscriptions: where an application's events go, and the secret that signs them."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import psycopg
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import Router
from psycopg.types.json import Jsonb

from hookpost.api import models, scope
from hookpost.api.pagination import decode_id_cursor, page
from hookpost.api.params import DEFAULT_LIMIT, AppId, Cursor, Limit, SubId
from hookpost.api.responses import json_response
from hookpost.aws.wake import wake_deliver
from hookpost.config import get_settings
from hookpost.db import queries
from hookpost.db.pool import connection
from hookpost.db.run import fetch_all, fetch_one
from hookpost.errors import Conflict, Invalid, NotFound
from hookpost.fields import EVENT_TYPE_NAME_RE
from hookpost.ids import uuid7
from hookpost.operational import OPERATIONAL_EVENT_TYPES, RESERVED_PREFIX, is_reserved
from hookpost.schemas import compile_schema, payload_errors
from hookpost.secrets_at_rest import seal, unseal
from hookpost.signing import generate_secret, secret_key
from hookpost.targets import TargetRefused, validate_target_url

router = Router()

# The type of a test delivery: Hookpost's own, so no client can send or declare it.
TEST_EVENT_TYPE = RESERVED_PREFIX + "test"

# Set by Hookpost on every delivery; a subscription may not override them.
RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "host", "user-agent", "transfer-encoding", "connection"}
)


def _checked_url(url: str) -> str:
    try:
        return validate_target_url(url, allow_private=get_settings().allow_private_targets)
    except TargetRefused as exc:
        raise Invalid.field("url", str(exc)) from None


def _checked_headers(headers: dict[str, str]) -> dict[str, str]:
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in RESERVED_HEADERS or lowered.startswith("webhook-"):
            raise Invalid.field(f"headers.{name}", "is set by Hookpost and cannot be overridden")
        if not name.isascii() or not all(c.isalnum() or c in "-_" for c in name):
            raise Invalid.field(f"headers.{name}", "is not a valid header name")
        if "\r" in value or "\n" in value:
            raise Invalid.field(f"headers.{name}", "must not contain line breaks")
    return headers


def _checked_filter(path: str | None) -> str | None:
    """A filter PostgreSQL parses as a jsonpath predicate; its own message names what is wrong."""
    if path is None:
        return None
    try:
        fetch_one(queries.SUBSCRIPTION_FILTER_CHECK, {"filter": path})
    except (psycopg.errors.DataError, psycopg.errors.SyntaxError) as exc:
        message = exc.diag.message_primary or str(exc)
        if isinstance(exc, psycopg.errors.SingletonSqlJsonItemRequired):
            message = f"must be a predicate (true or false for a payload): {message}"
        raise Invalid.field("filter", message) from None
    return path


def _batch_columns(batch: dict[str, int] | None) -> dict[str, int | None]:
    """The `batch` object as the columns that store it."""
    return {
        "batch_max_events": batch["max_events"] if batch else None,
        "batch_max_wait_ms": batch["max_wait_ms"] if batch else None,
    }


def _checked_event_types(names: list[str]) -> list[str]:
    for index, name in enumerate(names):
        if name != "*" and not EVENT_TYPE_NAME_RE.fullmatch(name):
            raise Invalid.field(
                f"event_types[{index}]", "must be an event type name like invoice.paid, or *"
            )
        if is_reserved(name) and name not in OPERATIONAL_EVENT_TYPES:
            raise Invalid.field(
                f"event_types[{index}]",
                f"{RESERVED_PREFIX}* names are reserved; Hookpost's operational event types are "
                + ", ".join(OPERATIONAL_EVENT_TYPES),
            )
    return sorted(set(names))


# A PATCH that changes ordering may meet a deliver copy recording outcomes of the same
# subscription in the other lock order; PostgreSQL then aborts one of the two, and this side
# tries again, after a growing, jittered pause (50 ms, 100 ms, ... doubled at random).
_ORDERING_CHANGE_TRIES = 5
_ORDERING_BACKOFF_S = 0.05

_HEALTH_COLUMNS = (
    "circuit",
    "open_since",
    "probe_at",
    "failure_streak",
    "paced_per_s",
    "paused_until",
)


def subscription_view(row: dict[str, Any]) -> dict[str, Any]:
    """A subscription row with its health (hookpost_subscription_health, see queries) as the API
    shows it: the health grouped."""
    view = {
        k: v
        for k, v in row.items()
        if k not in _HEALTH_COLUMNS and not k.startswith(("recent_", "batch_"))
    }
    view["batch"] = (
        {"max_events": row["batch_max_events"], "max_wait_ms": row["batch_max_wait_ms"]}
        if row["batch_max_events"] is not None
        else None
    )
    view["health"] = {
        **{k: row[k] for k in _HEALTH_COLUMNS},
        "recent": {
            "attempts": row["recent_attempts"],
            "success_rate": row["recent_success_rate"],
            "p50_ms": row["recent_p50_ms"],
        },
    }
    return view


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    return {**subscription_view(row), "secret": unseal(row["secret"])}


def _checked_secret(secret: str) -> str:
    try:
        secret_key(secret)
    except ValueError as exc:
        raise Invalid.field("secret", str(exc)) from None
    return secret


@router.post("/applications/<app_id>/subscriptions", tags=["subscriptions"], status_code=201)
def create_subscription(
    app_id: AppId, body: Annotated[models.SubscriptionIn, Body()]
) -> Response[models.SubscriptionWithSecret]:
    secret = _checked_secret(body.secret) if body.secret else generate_secret()
    row = fetch_one(
        queries.SUBSCRIPTION_INSERT,
        {
            "application_id": app_id,
            "url": _checked_url(body.url),
            "event_types": _checked_event_types(body.event_types),
            "labels": Jsonb(scope.with_portal_labels(router, body.labels, "labels")),
            "headers": Jsonb(_checked_headers(body.headers)),
            "description": body.description,
            "enabled": body.enabled,
            "secret": seal(secret),
            "rate_limit_per_s": body.rate_limit_per_s,
            "max_in_flight": body.max_in_flight,
            "ordering": body.ordering,
            "payload_filter": _checked_filter(body.filter),
            **_batch_columns(body.batch.model_dump() if body.batch else None),
            "debounce_s": body.debounce_s,
            "payload_mode": body.payload,
        },
    )
    return json_response(201, {**subscription_view(row), "secret": secret})


@router.get("/applications/<app_id>/subscriptions", tags=["subscriptions"])
def list_subscriptions(
    app_id: AppId, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Response[models.SubscriptionPage]:
    params = {
        "application_id": app_id,
        "after_id": decode_id_cursor(cursor),
        "limit": limit + 1,
        "labels": scope.labels_filter(router),
    }
    rows = fetch_all(queries.listing(queries.SUBSCRIPTION_LIST, params), params)
    return json_response(200, page([subscription_view(r) for r in rows], limit))


@router.get("/applications/<app_id>/subscriptions/<sub_id>", tags=["subscriptions"])
def get_subscription(app_id: AppId, sub_id: SubId) -> Response[models.SubscriptionWithSecret]:
    row = fetch_one(queries.SUBSCRIPTION_GET, {"id": sub_id, "application_id": app_id})
    if row is None:
        raise NotFound("subscription")
    return json_response(200, _shown(row))


@router.patch("/applications/<app_id>/subscriptions/<sub_id>", tags=["subscriptions"])
def update_subscription(
    app_id: AppId, sub_id: SubId, body: Annotated[models.SubscriptionPatch, Body()]
) -> Response[models.SubscriptionWithSecret]:
    changes: dict[str, Any] = body.model_dump(exclude_unset=True)
    # null clears description, rate_limit_per_s, max_in_flight, filter, batch and debounce_s; the
    # rest must have a value.
    for field in ("url", "event_types", "labels", "headers", "enabled", "ordering", "payload"):
        if field in changes and changes[field] is None:
            raise Invalid.field(field, "may not be null")
    if "filter" in changes:
        changes["payload_filter"] = _checked_filter(changes.pop("filter"))
    if "batch" in changes:
        changes.update(_batch_columns(changes.pop("batch")))
    if "payload" in changes:
        changes["payload_mode"] = changes.pop("payload")
    if "url" in changes:
        changes["url"] = _checked_url(changes["url"])
    if "event_types" in changes:
        changes["event_types"] = _checked_event_types(changes["event_types"])
    if "labels" in changes:
        changes["labels"] = Jsonb(scope.with_portal_labels(router, changes["labels"], "labels"))
    if "headers" in changes:
        changes["headers"] = Jsonb(_checked_headers(changes["headers"]))
    if changes.get("enabled"):
        changes["disabled_reason"] = None
    params = {"id": sub_id, "application_id": app_id}
    if "ordering" in changes:
        row = _update_with_ordering(changes, params)
    elif changes:
        row = fetch_one(
            queries.updating(queries.SUBSCRIPTION_UPDATE, list(changes)), {**changes, **params}
        )
    else:
        row = fetch_one(queries.SUBSCRIPTION_GET, params)
    if row is None:
        raise NotFound("subscription")
    return json_response(200, _shown(row))


def _update_with_ordering(changes: dict[str, Any], params: dict[str, Any]) -> dict | None:
    """The update, and the ordering keys of the attempts not finished yet, in one transaction
    (see queries.SUBSCRIPTION_LOCK)."""
    with connection() as conn:
        for attempt in range(_ORDERING_CHANGE_TRIES):
            try:
                with conn.transaction():
                    current = conn.execute(queries.SUBSCRIPTION_LOCK, params).fetchone()
                    if current is None:
                        return None
                    row = conn.execute(
                        queries.updating(queries.SUBSCRIPTION_UPDATE, list(changes)),
                        {**changes, **params},
                    ).fetchone()
                    if current["ordering"] != changes["ordering"]:
                        conn.execute(
                            queries.SUBSCRIPTION_ORDERING_BACKFILL,
                            {"id": params["id"], "ordering": changes["ordering"]},
                        )
                    return row
            except psycopg.errors.DeadlockDetected:
                # Caught here, inside `connection()`, which would report it as an outage. The
                # other side is an outcome being recorded (it holds attempts and waits for this
                # row); it retries as well, so give it time to commit before locking again, or
                # both meet in the same deadlock once more.
                time.sleep(_ORDERING_BACKOFF_S * 2**attempt * (1 + random.random()))
                continue
    raise Conflict("the subscription was busy being delivered to; send the change again")


@router.delete(
    "/applications/<app_id>/subscriptions/<sub_id>", tags=["subscriptions"], status_code=204
)
def delete_subscription(app_id: AppId, sub_id: SubId):
    if fetch_one(queries.SUBSCRIPTION_DELETE, {"id": sub_id, "application_id": app_id}) is None:
        raise NotFound("subscription")
    return Response(204)


@router.post("/applications/<app_id>/subscriptions/<sub_id>/rotate-secret", tags=["subscriptions"])
def rotate_secret(
    app_id: AppId, sub_id: SubId, body: Annotated[models.RotateSecretIn | None, Body()] = None
) -> Response[models.SubscriptionWithSecret]:
    secret = _checked_secret(body.secret) if body and body.secret else generate_secret()
    row = fetch_one(
        queries.SUBSCRIPTION_ROTATE_SECRET,
        {"id": sub_id, "application_id": app_id, "secret": seal(secret)},
    )
    if row is None:
        raise NotFound("subscription")
    return json_response(200, _shown(row))


@router.post(
    "/applications/<app_id>/subscriptions/<sub_id>/recover", tags=["subscriptions"], status_code=202
)
def recover(
    app_id: AppId, sub_id: SubId, body: Annotated[models.RecoverIn, Body()]
) -> Response[models.Recovered]:
    """Send again what this subscription missed: one new attempt, due now, for each event whose
    last attempt to it ended failed, gave_up or expired between `since` and `until`."""
    until = body.until or datetime.now(UTC)
    if body.since >= until:
        raise Invalid.field("since", "must be before `until`")
    if fetch_one(queries.SUBSCRIPTION_GET, {"id": sub_id, "application_id": app_id}) is None:
        raise NotFound("subscription")
    row = fetch_one(
        queries.SUBSCRIPTION_RECOVER,
        {"id": sub_id, "application_id": app_id, "since": body.since, "until": until},
    )
    created = row["attempts_created"] if row else 0
    if created:
        wake_deliver()
    return json_response(202, {"attempts_created": created})


@router.post(
    "/applications/<app_id>/subscriptions/<sub_id>/test", tags=["subscriptions"], status_code=202
)
def send_test(
    app_id: AppId, sub_id: SubId, body: Annotated[models.TestDeliveryIn | None, Body()] = None
) -> Response[models.TestDelivery]:
    """A signed delivery, like any other, to this subscription only: of type `hookpost.test`
    (Hookpost's own; no client may send it) or of a declared type of the application."""
    event_type = body.event_type if body and body.event_type else TEST_EVENT_TYPE
    payload = body.payload if body and body.payload is not None else _test_payload(sub_id)
    if event_type != TEST_EVENT_TYPE:
        _check_test_event(app_id, event_type, payload)
    event_uuid = uuid7()
    row = fetch_one(
        queries.SUBSCRIPTION_TEST,
        {
            "id": sub_id,
            "application_id": app_id,
            "event_uuid": event_uuid,
            "event_type": event_type,
            "payload": Jsonb(payload),
        },
    )
    if row is None:
        raise NotFound("subscription")
    wake_deliver()
    return json_response(202, {"attempt_id": row["attempt_id"]})


def _test_payload(sub_id: object) -> dict[str, Any]:
    return {"message": "a test delivery from Hookpost", "subscription_id": str(sub_id)}


def _check_test_event(app_id: object, event_type: str, payload: Any) -> None:
    declared = fetch_one(
        queries.EVENT_TYPES_FOR_INGEST, {"application_id": app_id, "names": [event_type]}
    )
    if declared is None or not declared["active"]:
        raise Invalid.field("event_type", f"not an active event type: {event_type!r}")
    if declared["schema"]:
        errors = payload_errors(compile_schema(declared["schema"]), payload)
        if errors:
            path, message = errors[0]
            raise Invalid.field("payload" + path, message)
