"""Attempts: one row per try of an event to a subscription."""

from __future__ import annotations

import uuid
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import Router

from hookpost.api import models, scope
from hookpost.api.pagination import decode_id_cursor, page
from hookpost.api.params import DEFAULT_LIMIT, AppId, AttemptId, Cursor, Limit
from hookpost.api.responses import json_response
from hookpost.api.views import attempt_view
from hookpost.aws.wake import wake_deliver
from hookpost.db import queries
from hookpost.db.run import fetch_all, fetch_one
from hookpost.errors import NotFound
from hookpost.ids import parse_uuid

router = Router()


@router.get("/applications/<app_id>/attempts", tags=["attempts"])
def list_attempts(
    app_id: AppId,
    status: Annotated[models.AttemptStatus | None, Query()] = None,
    subscription_id: Annotated[uuid.UUID | None, Query()] = None,
    event_id: Annotated[
        str | None, Query(max_length=255, description="the event's id or its event_id")
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response[models.AttemptPage]:
    params = {
        "application_id": app_id,
        "status": status,
        "subscription_id": subscription_id,
        "event_ref": event_id,
        "event_uuid": parse_uuid(event_id),
        "scope": scope.labels_filter(router),
        "after_id": decode_id_cursor(cursor),
        "limit": limit + 1,
    }
    rows = fetch_all(queries.listing(queries.ATTEMPT_LIST, params), params)
    return json_response(200, page([attempt_view(r) for r in rows], limit))


@router.get("/applications/<app_id>/attempts/<attempt_id>", tags=["attempts"])
def get_attempt(app_id: AppId, attempt_id: AttemptId) -> Response[models.Attempt]:
    row = fetch_one(queries.ATTEMPT_GET, {"id": attempt_id, "application_id": app_id})
    if row is None:
        raise NotFound("attempt")
    return json_response(200, attempt_view(row))


@router.post(
    "/applications/<app_id>/attempts/<attempt_id>/retry",
    tags=["attempts"],
    status_code=202,
)
def retry_attempt(app_id: AppId, attempt_id: AttemptId) -> Response[models.Attempt]:
    row = fetch_one(queries.ATTEMPT_RETRY, {"id": attempt_id, "application_id": app_id})
    if row is None:
        raise NotFound("attempt")
    wake_deliver()
    return json_response(202, attempt_view(row))
