"""`hookpost receive`: a webhook receiver on loopback that prints every delivery it gets.

For trying Hookpost out locally: point a subscription at it, send an event, and see what a
receiver sees: the headers, the body and, given the subscription's secret, whether the signature
verifies. It answers every POST with the status it was started with (200 by default), so failures
and retries can be tried too.
"""

from __future__ import annotations

import hmac
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TextIO

from hookpost.signing import secret_key, sign

_SHOWN_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature", "user-agent")


def signature_verdict(secret: str | None, headers: dict[str, str], body: bytes) -> str:
    """`valid`, `INVALID`, or `unchecked` (no secret given) for a delivery's signature."""
    if not secret:
        return "unchecked"
    try:
        timestamp = int(headers.get("webhook-timestamp", ""))
    except ValueError:
        return "INVALID"
    expected = sign(secret_key(secret), headers.get("webhook-id", ""), timestamp, body)
    offered = headers.get("webhook-signature", "").split()
    return "valid" if any(hmac.compare_digest(expected, s) for s in offered) else "INVALID"


def serve(
    port: int,
    *,
    host: str = "127.0.0.1",
    status: int = 200,
    secret: str | None = None,
    out: TextIO = sys.stdout,
) -> ThreadingHTTPServer:
    """A server ready to `serve_forever()`, printing each delivery to `out`."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            lines = [f"POST {self.path} -> {status}"]
            lines += [f"  {name}: {headers[name]}" for name in _SHOWN_HEADERS if name in headers]
            lines.append(f"  signature: {signature_verdict(secret, headers, body)}")
            try:
                lines.append("  " + json.dumps(json.loads(body), indent=2).replace("\n", "\n  "))
            except ValueError:
                lines.append("  " + body.decode(errors="replace"))
            print("\n".join(lines), file=out, flush=True)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """The delivery is printed above; the access log line would repeat it."""

    return ThreadingHTTPServer((host, port), Handler)
