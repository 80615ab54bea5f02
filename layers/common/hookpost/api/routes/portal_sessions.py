"""Portal sessions: an application hands one of its customers a token (for the API) and a link
(for the console), scoped to the subscriptions and events that carry the customer's labels."""

from __future__ import annotations

import uuid
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.event_handler.router import Router

from hookpost.api import models
from hookpost.api.params import AppId
from hookpost.api.responses import Problem, json_response
from hookpost.credentials import exchange_portal_link, new_portal_session
from hookpost.db import queries
from hookpost.db.run import fetch_one
from hookpost.errors import NotFound

router = Router()

SessionId = Annotated[uuid.UUID, Path(description="portal session id")]


@router.post("/applications/<app_id>/portal-sessions", tags=["portal"], status_code=201)
def create_portal_session(
    app_id: AppId, body: Annotated[models.PortalSessionIn, Body()]
) -> Response[models.PortalSessionCreated]:
    session = new_portal_session(app_id, body.labels, body.ttl_s)
    return json_response(
        201,
        {
            "id": session.id,
            "token": session.token,
            "url": f"{_console_url()}#link={session.link}",
            "expires_at": session.expires_at,
            "labels": session.labels,
        },
    )


@router.delete(
    "/applications/<app_id>/portal-sessions/<session_id>", tags=["portal"], status_code=204
)
def revoke_portal_session(app_id: AppId, session_id: SessionId):
    params = {"id": session_id, "application_id": app_id}
    if fetch_one(queries.PORTAL_SESSION_REVOKE, params) is None:
        raise NotFound("portal session")
    return Response(204)


@router.post("/portal/exchange", tags=["portal"])
def exchange_link(
    body: Annotated[models.PortalLinkIn, Body()],
) -> Response[models.PortalLinkExchanged]:
    """The console's half of a portal url: its one-time link for the session's console token.
    A link works once; used, expired or revoked it answers 401."""
    session = exchange_portal_link(body.link)
    if session is None:
        raise Problem(
            401,
            "this portal link was used already, has expired or was revoked",
            slug="unauthorized",
        )
    return json_response(
        200,
        {
            "token": session["token"],
            "application_id": session["application_id"],
            "labels": session["labels"],
            "expires_at": session["expires_at"],
        },
    )


def _console_url() -> str:
    """Where this API's console is, as the client reached the API: API Gateway's stage (in the
    request context's path, not the event's) included, https unless the request said otherwise.
    The link goes after `#`: a fragment never reaches a server, its logs or a Referer."""
    event = router.current_event
    headers = event.headers
    host = headers.get("host") or "localhost"
    scheme = headers.get("x-forwarded-proto") or ("http" if _is_loopback(host) else "https")
    full_path = event.request_context.path or event.path
    stage_prefix = (
        full_path[: len(full_path) - len(event.path)] if full_path.endswith(event.path) else ""
    )
    return f"{scheme}://{host}{stage_prefix}/console"


def _is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name in ("localhost", "127.0.0.1", "[::1]") or name.startswith("127.")
