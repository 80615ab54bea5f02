"""Applications and their API keys: the admin token's routes."""

from __future__ import annotations

import uuid
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.event_handler.router import Router

from hookpost.api import models
from hookpost.api.pagination import decode_id_cursor, page
from hookpost.api.params import DEFAULT_LIMIT, AppId, Cursor, Limit
from hookpost.api.responses import json_response
from hookpost.aws import usage_plans
from hookpost.credentials import new_api_key
from hookpost.db import queries
from hookpost.db.pool import connection
from hookpost.db.run import fetch_all, fetch_one
from hookpost.errors import NotFound

router = Router()


@router.post("/applications", tags=["applications"], status_code=201)
def create_application(
    body: Annotated[models.ApplicationIn, Body()],
) -> Response[models.Application]:
    row = fetch_one(queries.APPLICATION_INSERT, body.model_dump())
    # An application whose API Gateway key (AWS only) could not be made is not kept: the usage
    # plan would refuse its every request. Undone rather than held in a transaction, which must
    # not stay open across a call to another service.
    try:
        usage_plans.create_application_key(row["id"])
    except Exception:
        fetch_one(queries.APPLICATION_DELETE, {"id": row["id"]})
        raise
    return json_response(201, row)


@router.get("/applications", tags=["applications"])
def list_applications(
    limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Response[models.ApplicationPage]:
    params = {"after_id": decode_id_cursor(cursor), "limit": limit + 1}
    rows = fetch_all(queries.listing(queries.APPLICATION_LIST, params), params)
    return json_response(200, page(rows, limit))


@router.get("/applications/<app_id>", tags=["applications"])
def get_application(app_id: AppId) -> Response[models.Application]:
    row = fetch_one(queries.APPLICATION_GET, {"id": app_id})
    if row is None:
        raise NotFound("application")
    return json_response(200, row)


@router.patch("/applications/<app_id>", tags=["applications"])
def update_application(
    app_id: AppId, body: Annotated[models.ApplicationPatch, Body()]
) -> Response[models.Application]:
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if changes:
        statement = queries.updating(queries.APPLICATION_UPDATE, list(changes))
        row = fetch_one(statement, {**changes, "id": app_id})
    else:
        row = fetch_one(queries.APPLICATION_GET, {"id": app_id})
    if row is None:
        raise NotFound("application")
    return json_response(200, row)


@router.delete("/applications/<app_id>", tags=["applications"], status_code=204)
def delete_application(app_id: AppId):
    if fetch_one(queries.APPLICATION_GET, {"id": app_id}) is None:
        raise NotFound("application")
    # The key first: if it cannot be deleted the application stays whole, and deleting again
    # finishes the job (a missing key is nothing to delete).
    usage_plans.delete_application_key(app_id)
    if fetch_one(queries.APPLICATION_DELETE, {"id": app_id}) is None:
        raise NotFound("application")
    return Response(204)


@router.post("/applications/<app_id>/api-keys", tags=["api keys"], status_code=201)
def create_api_key(
    app_id: AppId, body: Annotated[models.ApiKeyIn, Body()]
) -> Response[models.ApiKeyCreated]:
    key, key_hash, prefix = new_api_key()
    with connection() as conn:
        if conn.execute(queries.APPLICATION_GET, {"id": app_id}).fetchone() is None:
            raise NotFound("application")
        row = conn.execute(
            queries.API_KEY_INSERT,
            {
                "application_id": app_id,
                "name": body.name,
                "key_hash": key_hash,
                "key_prefix": prefix,
                "ttl_s": body.ttl_s,
            },
        ).fetchone()
    return json_response(201, {**row, "key": key})


@router.get("/applications/<app_id>/api-keys", tags=["api keys"])
def list_api_keys(
    app_id: AppId, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Response[models.ApiKeyPage]:
    if fetch_one(queries.APPLICATION_GET, {"id": app_id}) is None:
        raise NotFound("application")
    params = {"application_id": app_id, "after_id": decode_id_cursor(cursor), "limit": limit + 1}
    rows = fetch_all(queries.listing(queries.API_KEY_LIST, params), params)
    return json_response(200, page(rows, limit))


@router.delete("/applications/<app_id>/api-keys/<key_id>", tags=["api keys"], status_code=204)
def revoke_api_key(app_id: AppId, key_id: Annotated[uuid.UUID, Path()]):
    if fetch_one(queries.API_KEY_REVOKE, {"id": key_id, "application_id": app_id}) is None:
        raise NotFound("API key")
    return Response(204)
