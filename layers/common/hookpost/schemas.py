"""Event-type JSON Schemas: checked when declared, compiled once, applied to every payload."""

from __future__ import annotations

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


def compile_schema(schema: dict[str, Any]) -> Validator:
    """A validator for a schema that passed `check_schema`; build it once, use it per payload."""
    return jsonschema.validators.validator_for(schema)(schema)


def payload_errors(validator: Validator, payload: Any) -> list[tuple[str, str]]:
    """(path under the payload, message) for each way a payload breaks a schema, most relevant
    first; empty when it fits."""
    errors = sorted(validator.iter_errors(payload), key=jsonschema.exceptions.relevance)
    return [_describe(error) for error in errors[:10]]


def _describe(error: jsonschema.ValidationError) -> tuple[str, str]:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return path, error.message
