"""Reading API Gateway (REST, proxy) events, for what looks at a request before the API's
resolver does: the rate limits and the API's own early checks."""

from __future__ import annotations

from typing import Any


def event_header(event: dict[str, Any], name: str) -> str:
    """A header of an API Gateway event, whatever its case; empty when absent."""
    headers = event.get("headers") or {}
    return next((v for k, v in headers.items() if k.lower() == name), "") or ""
