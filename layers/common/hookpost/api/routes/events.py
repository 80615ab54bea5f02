"""Events: ingest (one or a batch), read back with their attempts, replay."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.event_handler.router import Router
from psycopg.types.json import Jsonb
from pydantic import TypeAdapter

from hookpost.api import models, scope
from hookpost.api.auth import Deferred
from hookpost.api.pagination import decode_id_cursor, page
from hookpost.api.params import DEFAULT_LIMIT, AppId, Cursor, EventRef, EventUuid, Limit
from hookpost.api.responses import json_response
from hookpost.api.views import attempt_view
from hookpost.aws.wake import wake_deliver
from hookpost.db import queries
from hookpost.db.pool import connection
from hookpost.db.run import fetch_all
from hookpost.errors import Invalid, NotFound
from hookpost.events import EventIn
from hookpost.fields import InputTimestamp
from hookpost.ids import parse_uuid
from hookpost.ingest import ingest

router = Router()


def _ingested(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ingest's results, after waking the deliver loops if it created attempts."""
    if any(result["attempts_created"] and not result["duplicate"] for result in results):
        wake_deliver()
    return results


def accept_one(app_id: uuid.UUID, event: EventIn) -> tuple[int, dict[str, Any]]:
    """The status and body (models.EventAccepted) of POST .../events."""
    (result,) = _ingested(ingest(app_id, [event], batch=False, checks=Deferred.checks))
    return 200 if result["duplicate"] else 202, result


def accept_batch(app_id: uuid.UUID, events: list[EventIn]) -> tuple[int, dict[str, Any]]:
    """The status and body (models.EventBatchAccepted) of POST .../events/batch."""
    return 202, {"data": _ingested(ingest(app_id, events, batch=True, checks=Deferred.checks))}


@router.post(
    "/applications/<app_id>/events",
    tags=["events"],
    status_code=202,
    responses={
        202: {
            "description": "stored, with one pending attempt per matching subscription",
            "content": {"application/json": {"model": models.EventAccepted}},
        },
        200: {
            "description": "this event_id was accepted before: the first result, nothing new",
            "content": {"application/json": {"model": models.EventAccepted}},
        },
    },
)
def send_event(app_id: AppId, body: Annotated[EventIn, Body()]) -> Response[models.EventAccepted]:
    return json_response(*accept_one(app_id, body))


@router.post(
    "/applications/<app_id>/events/batch",
    tags=["events"],
    status_code=202,
)
def send_events(
    app_id: AppId, body: Annotated[models.EventBatchIn, Body()]
) -> Response[models.EventBatchAccepted]:
    return json_response(*accept_batch(app_id, body.events))


# The two routes above, answered without the resolver (`direct`): what their validation does,
# compiled once. The path is one the resolver routes to them, with an id that can be a UUID.
_DIRECT_PATH = re.compile(r"/v1/applications/([0-9A-Fa-f-]{32,36})/events(/batch)?")
_APP_ID: TypeAdapter[uuid.UUID] = TypeAdapter(uuid.UUID)
_EVENT: TypeAdapter[EventIn] = TypeAdapter(EventIn)
_BATCH: TypeAdapter[models.EventBatchIn] = TypeAdapter(models.EventBatchIn)
# The resolver's serializer, as it writes a validated response model.
_json = json.JSONEncoder(separators=(",", ":")).encode


def direct(event: dict[str, Any]) -> Callable[[], Response] | None:
    """An API Gateway event that send_event or send_events accepts, as a call answering it as
    they do; None for any other request. A single event costs about half the CPU this way: the
    resolver's routing, its OpenAPI validation of the path, the body and the response, and its
    response building took more than all the rest of the request.

    Accepted means exactly what the resolver's validation accepts: the body read as it reads it
    (JSON when the Content-Type header, the last of its spellings, is empty or application/json;
    json.loads), one object validated by the same models (`from_attributes` as it does), the app
    id as its path parameter. Anything else (invalid JSON or body, another content type, a body
    in base64, an id that is no UUID) is left to the resolver, so every refusal is its own, word
    for word."""
    match = _DIRECT_PATH.fullmatch(event.get("path") or "")
    if match is None or event.get("isBase64Encoded") or not event.get("body"):
        return None
    try:
        content_type = ""
        for name, value in (event.get("headers") or {}).items():
            if name.lower() == "content-type":
                content_type = value
        content_type = content_type.strip()
        if content_type and not content_type.startswith("application/json"):
            return None
        body = json.loads(event["body"])
        if not isinstance(body, dict):
            return None
        app_id = _APP_ID.validate_python(match[1])
        if match[2]:
            events = _BATCH.validate_python(body, from_attributes=True).events
        else:
            one = _EVENT.validate_python(body, from_attributes=True)
    except Exception:
        return None
    if match[2]:
        return lambda: _answer(*accept_batch(app_id, events))
    return lambda: _answer(*accept_one(app_id, one))


def _answer(status: int, body: dict[str, Any]) -> Response:
    return Response(status, "application/json", _json(body))


LABEL_PREFIX = "label."


@router.get(
    "/applications/<app_id>/events",
    tags=["events"],
    description="Newest first. Besides the parameters below, `label.<key>=<value>` (any number"
    " of them) keeps the events whose labels include each.",
)
def list_events(
    app_id: AppId,
    event_type: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[
        InputTimestamp | None, Query(description="RFC 3339: accepted at or after")
    ] = None,
    until: Annotated[
        InputTimestamp | None, Query(description="RFC 3339: accepted before (exclusive)")
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response[models.EventPage]:
    wanted = _label_filters(router.current_event.query_string_parameters or {})
    fixed = scope.portal_labels(router) or {}
    if any(wanted.get(key, value) != value for key, value in fixed.items()):
        # A label the portal session fixes asked with another value: nothing it may see.
        return json_response(200, {"data": [], "next_cursor": None})
    labels = {**wanted, **fixed}
    params = {
        "application_id": app_id,
        "event_type": event_type,
        "since": since,
        "until": until,
        "labels": Jsonb(labels) if labels else None,
        "after_id": decode_id_cursor(cursor),
        "limit": limit + 1,
    }
    rows = fetch_all(queries.listing(queries.EVENT_LIST, params), params)
    return json_response(200, page(rows, limit))


def _label_filters(query: dict[str, str]) -> dict[str, str]:
    labels = {
        k.removeprefix(LABEL_PREFIX): v for k, v in query.items() if k.startswith(LABEL_PREFIX)
    }
    for key, value in labels.items():
        if not 1 <= len(key) <= 200:
            raise Invalid.field(LABEL_PREFIX + key, "a label key has 1 to 200 characters")
        if len(value) > 1000:
            raise Invalid.field(LABEL_PREFIX + key, "a label value has at most 1000 characters")
    return labels


@router.get("/applications/<app_id>/events/<event_id>", tags=["events"])
def get_event(app_id: AppId, event_id: EventRef) -> Response[models.EventDetail]:
    with connection() as conn:
        event = conn.execute(
            queries.EVENT_GET_BY_REF,
            {"application_id": app_id, "event_uuid": parse_uuid(event_id), "event_ref": event_id},
        ).fetchone()
        if event is None:
            raise NotFound("event")
        attempts = conn.execute(queries.ATTEMPTS_OF_EVENT, {"event_id": event["id"]}).fetchall()
    attempts = scope.rows_in_scope(attempts, scope.subscriptions_in_scope(router, app_id))
    return json_response(200, {**event, "attempts": [attempt_view(a) for a in attempts]})


@router.post(
    "/applications/<app_id>/events/<event_id>/replay",
    tags=["events"],
    status_code=202,
)
def replay_event(
    app_id: AppId, event_id: EventUuid, body: Annotated[models.ReplayIn | None, Body()] = None
) -> Response[models.Replayed]:
    subscription_ids = (
        list(dict.fromkeys(body.subscription_ids)) if body and body.subscription_ids else None
    )
    with connection() as conn, conn.transaction():
        if (
            conn.execute(queries.EVENT_GET, {"id": event_id, "application_id": app_id}).fetchone()
            is None
        ):
            raise NotFound("event")
        if subscription_ids is not None:
            enabled = {
                row["id"]
                for row in conn.execute(
                    queries.SUBSCRIPTIONS_ENABLED_AMONG,
                    {"application_id": app_id, "ids": subscription_ids},
                )
            }
            reachable = scope.subscriptions_in_scope(router, app_id)
            if reachable is not None:
                enabled &= reachable
            unknown = [str(s) for s in subscription_ids if s not in enabled]
            if unknown:
                raise Invalid.field(
                    "subscription_ids",
                    f"not enabled subscriptions of this application: {', '.join(unknown)}",
                )
        created = conn.execute(
            queries.EVENT_REPLAY,
            {
                "id": event_id,
                "application_id": app_id,
                "subscription_ids": subscription_ids,
                "scope": scope.scope_param(router),
            },
        ).fetchall()
    ids = [row["id"] for row in created]
    if ids:
        wake_deliver()
    return json_response(202, {"id": event_id, "attempts_created": len(ids), "attempt_ids": ids})
