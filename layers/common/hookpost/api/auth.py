"""Bearer credentials: the admin token for applications and their keys, `hp_` keys for the
routes of one application each. Which one a request needs follows from its path alone."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter

from hookpost.api.responses import Problem, not_found
from hookpost.config import get_settings
from hookpost.db import queries
from hookpost.db.run import fetch_one
from hookpost.ids import parse_uuid

API_KEY_PREFIX = "hp_"


def new_api_key() -> tuple[str, bytes, str]:
    """A fresh key, its stored hash, and the short prefix shown in listings."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return key, hash_api_key(key), key[:10]


def hash_api_key(key: str) -> bytes:
    # Keys carry 256 random bits, so a plain SHA-256 is enough and keeps lookups indexable.
    return hashlib.sha256(key.encode()).digest()


def authorize(app: BaseRouter) -> None:
    """Raise the problem a request's credentials earn on its path, or return when it may go on.

    /v1/applications[/{id}[/api-keys...]] need the admin token; any other route under
    /v1/applications/{id}/ needs a key of that very application (another application's id reads
    exactly as a missing one: 404). Everything else is public.
    """
    parts = app.current_event.path.strip("/").split("/")
    if parts[:2] != ["v1", "applications"]:
        return
    token = _bearer(app)
    if len(parts) <= 3 or parts[3] == "api-keys":
        if not is_admin_token(token):
            if key_application(token) is not None:
                raise Problem(403, "this route needs the admin token", slug="forbidden")
            raise _unauthorized("invalid token")
        return
    if is_admin_token(token):
        raise Problem(403, "this route needs an application API key", slug="forbidden")
    application_id = key_application(token)
    if application_id is None:
        raise _unauthorized("invalid or revoked API key")
    if parse_uuid(parts[2]) != application_id:
        raise not_found("application")


def authorize_middleware(
    app: BaseRouter, next_middleware: Callable[[BaseRouter], Response]
) -> Response:
    authorize(app)
    return next_middleware(app)


def _unauthorized(detail: str) -> Problem:
    return Problem(
        401, detail, slug="unauthorized", headers={"WWW-Authenticate": 'Bearer realm="hookpost"'}
    )


def event_header(event: dict[str, Any], name: str) -> str:
    """A header of an API Gateway event, whatever its case; empty when absent."""
    headers = event.get("headers") or {}
    return next((v for k, v in headers.items() if k.lower() == name), "") or ""


def bearer_token(header: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header's value, or None."""
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _bearer(app: BaseRouter) -> str:
    token = bearer_token(app.current_event.headers.get("authorization") or "")
    if token is None:
        raise _unauthorized("a bearer token is required")
    return token


def is_admin_token(token: str) -> bool:
    """Whether the token is the admin token (compared in constant time)."""
    admin = get_settings().admin_token
    return bool(admin) and hmac.compare_digest(token.encode(), admin.encode())


def key_application(token: str) -> uuid.UUID | None:
    """The application of a live (not revoked) `hp_` key, or None."""
    if not token.startswith(API_KEY_PREFIX):
        return None
    row = fetch_one(queries.API_KEY_APPLICATION, {"key_hash": hash_api_key(token)})
    return row["application_id"] if row else None
