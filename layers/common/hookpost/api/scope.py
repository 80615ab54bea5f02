"""What a portal session (an `hpp_` token) may reach, enforced for every route under its
application: the routes a customer uses on their own endpoints, and there only the subscriptions
whose labels include the session's, the events carrying them and the attempts to those
subscriptions. Any other route of the application answers 403; anything else of the application
reads as missing (404), exactly like another application's."""

from __future__ import annotations

import uuid
from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
from psycopg.types.json import Jsonb

from hookpost.api.responses import Problem
from hookpost.db import queries
from hookpost.db.run import fetch_all, fetch_one
from hookpost.errors import Invalid, NotFound
from hookpost.ids import parse_uuid

_CONTEXT_KEY = "portal_labels"

# (method, the path after /v1/applications/{app_id}/ with ids as "*") a portal session may call.
PORTAL_ROUTES = frozenset(
    {
        ("GET", "event-types"),
        ("GET", "subscriptions"),
        ("POST", "subscriptions"),
        ("GET", "subscriptions/*"),
        ("PATCH", "subscriptions/*"),
        ("DELETE", "subscriptions/*"),
        ("POST", "subscriptions/*/rotate-secret"),
        ("POST", "subscriptions/*/recover"),
        ("POST", "subscriptions/*/test"),
        ("GET", "events"),
        ("GET", "events/*"),
        ("POST", "events/*/replay"),
        ("GET", "attempts"),
        ("GET", "attempts/*"),
        ("POST", "attempts/*/retry"),
    }
)

# The query that says whether the resource a path names is within the session's labels.
_IN_SCOPE = {
    "subscriptions": (queries.PORTAL_SUBSCRIPTION_IN_SCOPE, "subscription"),
    "events": (queries.PORTAL_EVENT_IN_SCOPE, "event"),
    "attempts": (queries.PORTAL_ATTEMPT_IN_SCOPE, "attempt"),
}


def admit(
    app: BaseRouter, method: str, application_id: uuid.UUID, rest: list[str], labels: dict
) -> None:
    """Let a portal session's request go on (its labels in the request's context for the route
    to narrow lists with), or raise 403 for a route it may not use, 404 for a resource out of
    its reach."""
    shape = "/".join(part if index % 2 == 0 else "*" for index, part in enumerate(rest))
    if (method, shape) not in PORTAL_ROUTES:
        raise Problem(403, "a portal session cannot use this route", slug="forbidden")
    if len(rest) >= 2:
        statement, what = _IN_SCOPE[rest[0]]
        ref = rest[1]
        params = {
            "application_id": application_id,
            "id": parse_uuid(ref),
            "event_uuid": parse_uuid(ref),
            "event_ref": ref,
            "scope": Jsonb(labels),
        }
        if fetch_one(statement, params) is None:
            raise NotFound(what)
    app.append_context(**{_CONTEXT_KEY: labels})


def portal_labels(app: BaseRouter) -> dict[str, str] | None:
    """The labels of the portal session making this request; None for any other caller."""
    return app.context.get(_CONTEXT_KEY)


def labels_filter(app: BaseRouter) -> Jsonb | None:
    """A list's `labels` (or `scope`) filter for a portal session; None (no filter) otherwise."""
    labels = portal_labels(app)
    return Jsonb(labels) if labels is not None else None


def scope_param(app: BaseRouter) -> Jsonb:
    """The labels a statement's `scope` parameter narrows to: '{}' (everything) unless portal."""
    return Jsonb(portal_labels(app) or {})


def with_portal_labels(app: BaseRouter, labels: dict[str, str], field: str) -> dict[str, str]:
    """A subscription's labels as a portal session may set them: the session's own are always
    there and cannot be changed."""
    fixed = portal_labels(app) or {}
    for key, value in fixed.items():
        if key in labels and labels[key] != value:
            raise Invalid.field(f"{field}.{key}", "is set by the portal session and cannot change")
    return {**labels, **fixed}


def subscriptions_in_scope(app: BaseRouter, application_id: uuid.UUID) -> set[uuid.UUID] | None:
    """The ids of the subscriptions a portal session may reach; None (all) for anyone else."""
    labels = portal_labels(app)
    if labels is None:
        return None
    params = {"application_id": application_id, "scope": Jsonb(labels)}
    return {row["id"] for row in fetch_all(queries.PORTAL_SUBSCRIPTIONS_IN_SCOPE, params)}


def rows_in_scope(rows: list[dict[str, Any]], reachable: set[uuid.UUID] | None) -> list[dict]:
    return rows if reachable is None else [r for r in rows if r["subscription_id"] in reachable]
