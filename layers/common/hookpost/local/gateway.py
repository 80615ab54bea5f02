"""A WSGI app that turns each HTTP request into the API Gateway REST proxy event `sam local
start-api` would send, calls a Lambda handler with it, and writes back the handler's answer."""

from __future__ import annotations

import base64
import importlib.util
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]
StartResponse = Callable[[str, list[tuple[str, str]]], Any]

_TEXT_TYPES = ("application/json", "application/problem+json", "text/", "application/x-www-form")


@dataclass
class LocalLambdaContext:
    """What powertools reads from a Lambda context object."""

    function_name: str = "hookpost-local"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:local:000000000000:function:hookpost-local"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/hookpost-local"
    log_stream_name: str = "local"
    deadline_ms: int = field(default_factory=lambda: int(time.time() * 1000) + 30_000)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.deadline_ms - int(time.time() * 1000))


def load_handler(path: str | Path, name: str = "lambda_handler") -> LambdaHandler:
    """Import a function's `app.py` by path, as the Lambda runtime would."""
    path = Path(path).resolve()
    spec = importlib.util.spec_from_file_location(f"lambda_{path.parent.name}_app", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def proxy_event(environ: dict[str, Any]) -> dict[str, Any]:
    method = environ["REQUEST_METHOD"]
    path = environ.get("PATH_INFO") or "/"
    multi_headers: dict[str, list[str]] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            multi_headers.setdefault(key[5:].replace("_", "-").title(), []).append(value)
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            multi_headers[key.replace("_", "-").title()] = [environ[key]]
    query = parse_qs(environ.get("QUERY_STRING") or "", keep_blank_values=True)
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    try:
        body, is_base64 = (raw.decode() if raw else None), False
    except UnicodeDecodeError:
        body, is_base64 = base64.b64encode(raw).decode(), True
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": {k: v[-1] for k, v in multi_headers.items()} or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": path,
            "stage": "local",
            "requestId": str(uuid.uuid4()),
            "requestTimeEpoch": int(time.time() * 1000),
            "protocol": environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
            "identity": {
                "sourceIp": environ.get("REMOTE_ADDR", "127.0.0.1"),
                "userAgent": environ.get("HTTP_USER_AGENT"),
            },
            "accountId": "000000000000",
            "apiId": "local",
        },
        "body": body,
        "isBase64Encoded": is_base64,
    }


def wsgi_app(handler: LambdaHandler) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        result = handler(proxy_event(environ), LocalLambdaContext())
        status = int(result.get("statusCode", 200))
        headers = [(k, str(v)) for k, v in (result.get("headers") or {}).items()]
        for key, values in (result.get("multiValueHeaders") or {}).items():
            headers.extend((key, str(v)) for v in values)
        body = result.get("body") or ""
        payload = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
        headers.append(("Content-Length", str(len(payload))))
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [payload]

    return app
