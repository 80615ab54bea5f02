"""Event types: the names an application sends, each with an optional payload schema."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.event_handler.router import Router
from psycopg.types.json import Jsonb

from hookpost.api import models
from hookpost.api.pagination import decode_cursor, page
from hookpost.api.params import DEFAULT_LIMIT, AppId, Cursor, Limit
from hookpost.api.responses import json_response
from hookpost.db import queries
from hookpost.db.run import fetch_all, fetch_one
from hookpost.errors import Conflict, Invalid, NotFound
from hookpost.operational import RESERVED_PREFIX, is_reserved
from hookpost.schemas import check_schema

router = Router()


@router.post("/applications/<app_id>/event-types", tags=["event types"], status_code=201)
def create_event_type(
    app_id: AppId, body: Annotated[models.EventTypeIn, Body()]
) -> Response[models.EventType]:
    if is_reserved(body.name):
        raise Invalid.field(
            "name", f"{RESERVED_PREFIX}* names are reserved for Hookpost's operational events"
        )
    if body.json_schema is not None and (problem := check_schema(body.json_schema)):
        raise Invalid.field("schema", f"not a valid JSON Schema: {problem}")
    row = fetch_one(
        queries.EVENT_TYPE_UPSERT,
        {
            "application_id": app_id,
            "name": body.name,
            "description": body.description,
            "schema": Jsonb(body.json_schema) if body.json_schema is not None else None,
        },
    )
    if row is None:
        raise Conflict(f"event type {body.name!r} already exists")
    return json_response(201, row)


@router.get("/applications/<app_id>/event-types", tags=["event types"])
def list_event_types(
    app_id: AppId, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Response[models.EventTypePage]:
    params = {"application_id": app_id, "after_name": decode_cursor(cursor), "limit": limit + 1}
    rows = fetch_all(queries.listing(queries.EVENT_TYPE_LIST, params), params)
    return json_response(200, page(rows, limit, key="name"))


@router.delete("/applications/<app_id>/event-types/<name>", tags=["event types"], status_code=204)
def deactivate_event_type(app_id: AppId, name: Annotated[str, Path()]):
    if fetch_one(queries.EVENT_TYPE_DEACTIVATE, {"application_id": app_id, "name": name}) is None:
        raise NotFound("event type")
    return Response(204)
