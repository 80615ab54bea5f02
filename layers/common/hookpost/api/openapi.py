"""The OpenAPI document served at /v1/openapi.json and /v1/docs: powertools generates it from
the routes and models; this adds what powertools cannot know (every error is a problem body,
the bearer scheme) so the document describes what the API really answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.swagger_ui.html import generate_swagger_html

PUBLIC_PATHS = {"/v1/health"}

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}

_PROBLEM_RESPONSE = {
    "description": "a problem: 400 malformed JSON, 401, 403, 404, 405 with Allow, 409, 413, 422"
    " with `errors`, 429 and 503 with Retry-After",
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}
_POWERTOOLS_ERROR_SCHEMAS = ("HTTPValidationError", "ValidationError", "ResponseValidationError")


def document(resolver: APIGatewayRestResolver) -> dict[str, Any]:
    doc = json.loads(resolver.get_openapi_json_schema())
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in _POWERTOOLS_ERROR_SCHEMAS:
        schemas.pop(name, None)
    schemas["Problem"] = PROBLEM_SCHEMA
    doc["components"]["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "the admin token, or an application's `hp_` API key",
        }
    }
    for path, operations in doc["paths"].items():
        for operation in operations.values():
            responses = operation["responses"]
            responses.pop("422", None)
            if "204" in responses:
                responses["204"] = {"description": "done; no body"}
            responses["default"] = _PROBLEM_RESPONSE
            if path == "/v1/health":
                responses["503"] = {**responses["200"], "description": "the database is down"}
            if path not in PUBLIC_PATHS:
                operation["security"] = [{"bearer": []}]
    return doc


def json_route(resolver: APIGatewayRestResolver) -> Response:
    return Response(200, "application/json", _cached(resolver))


def docs_route(resolver: APIGatewayRestResolver) -> Response:
    ui = Path(generate_swagger_html.__code__.co_filename).parent
    html = generate_swagger_html(
        _cached(resolver).replace("</", "<\\/"),
        (ui / "swagger-ui-bundle.min.js").read_text(),
        (ui / "swagger-ui.min.css").read_text(),
        "",
        None,
    )
    return Response(200, "text/html", html)


def _cached(resolver: APIGatewayRestResolver) -> str:
    # The routes never change after start-up, so one rendering per resolver is enough.
    text = getattr(resolver, "_hookpost_openapi", None)
    if text is None:
        text = json.dumps(document(resolver))
        resolver._hookpost_openapi = text  # type: ignore[attr-defined]
    return text
