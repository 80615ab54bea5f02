"""Liveness with the one dependency that matters: can we reach PostgreSQL.

Anyone may ask, as often as they like: without the admin token the answer comes from what this
process knows, at most HEALTH_MAX_AGE_S old (a statement that succeeded, the background probe
while the database is lost; failing those, one query), so a load balancer or a monitor polling
it costs the database at most a query a second per process. With the admin token it is checked
live, now."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import Router

from hookpost.api import models
from hookpost.api.responses import json_response
from hookpost.credentials import bearer_token, identify
from hookpost.db.pool import DatabaseUnavailable, check_live, reachable

HEALTH_MAX_AGE_S = 1.0

router = Router()


@router.get("/health", tags=["health"])
def health() -> Response[models.Health]:
    found = check_live() if _from_admin() else reachable(HEALTH_MAX_AGE_S)
    if not found:
        return json_response(503, {"status": "degraded", "database": "unavailable"})
    return json_response(200, {"status": "ok", "database": "ok"})


def _from_admin() -> bool:
    token = bearer_token(router.current_event.headers.get("authorization") or "")
    if token is None:
        return False
    try:
        caller = identify(token)
    except DatabaseUnavailable:  # an API key, which takes a query to know: a public caller
        return False
    return caller is not None and caller.is_admin
