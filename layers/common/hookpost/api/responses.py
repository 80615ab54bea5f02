"""Response bodies: JSON, and RFC 9457 problem details, the one shape of every error."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response

PROBLEM_CONTENT_TYPE = "application/problem+json"
_TYPE_BASE = "https://hookpost.dev/problems/"


class Problem(Exception):
    """Raised by the API's own checks (credentials) to answer with a problem body; what goes
    wrong below the API raises a `hookpost.errors` kind instead (see `hookpost.api.app`)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.slug = slug
        self.errors = errors
        self.headers = headers or {}

    def to_response(self) -> Response:
        return problem_response(
            self.status, self.detail, slug=self.slug, errors=self.errors, headers=self.headers
        )


def problem_response(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = problem_body(status, detail, slug=slug, errors=errors)
    return Response(status, PROBLEM_CONTENT_TYPE, json.dumps(body), headers=headers)


def problem_body(
    status: int, detail: str, *, slug: str | None = None, errors: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    title = HTTPStatus(status).phrase
    body: dict[str, Any] = {
        "type": _TYPE_BASE + (slug or title.lower().replace(" ", "-")),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return body


def field_error(field: str, message: str) -> dict[str, str]:
    return {"field": field, "message": message}


def json_response(status: int, body: object) -> Response:
    return Response(status, "application/json", body)
