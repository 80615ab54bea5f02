"""Event-type JSON Schemas: checked when declared, compiled once, applied to every payload."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import jsonschema
from jsonschema.protocols import Validator


def check_schema(schema: dict[str, Any]) -> str | None:
    """None when the schema is a valid JSON Schema, else what is wrong with it."""
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        return exc.message
    return None


@lru_cache(maxsize=1024)
def _compiled(schema_text: str) -> Validator:
    schema = json.loads(schema_text)
    return jsonschema.validators.validator_for(schema)(schema)


def payload_errors(schema: dict[str, Any], payload: Any) -> list[tuple[str, str]]:
    """(path under the payload, message) for each way a payload breaks a schema, most relevant
    first; empty when it fits."""
    # Keyed by the schema's text, so a changed schema is a new entry and nothing goes stale.
    validator = _compiled(json.dumps(schema, sort_keys=True))
    errors = sorted(validator.iter_errors(payload), key=jsonschema.exceptions.relevance)
    return [_describe(error) for error in errors[:10]]


def _describe(error: jsonschema.ValidationError) -> tuple[str, str]:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return path, error.message
