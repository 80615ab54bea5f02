"""One signed Standard Webhooks POST per attempt, or per batch of attempts, over one shared
aiohttp session.

aiohttp rather than httpx: httpx 0.28's pool collapses at high concurrency (encode/httpx#3215,
encode/httpcore#1035). Measured on one loopback receiver (bench/receiver.py), 2 cores: httpx
588 requests/s at 10 in flight and 145/s at 100; aiohttp 7,400/s and 7,200/s. `make bench`
reports delivery's rate beside the same client's wire-only rate.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, cast

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from multidict import CIMultiDict
from yarl import URL

from hookpost import __version__
from hookpost.config import DeliverySettings
from hookpost.delivery.schedule import parse_retry_after
from hookpost.links import make_token
from hookpost.secrets_at_rest import SecretUnavailable, unseal
from hookpost.signing import secret_key, signature_header
from hookpost.targets import TargetRefused, check_address, is_public_address, parse_ip_literal
from hookpost.timestamps import rfc3339

USER_AGENT = f"Hookpost/{__version__}"
# The `type` of a batch's body.
BATCH_TYPE = "hookpost.batch"
# At most this much of a response body is read and kept (CONTRACT section 3).
MAX_RESPONSE_BYTES = 64 * 1024


class RefusedAddress(OSError):
    """A host resolved to a non-public address. An OSError, because that is what aiohttp
    expects from a resolver (it wraps it in ClientConnectorDNSError)."""


class CheckingResolver(AbstractResolver):
    """The default resolver, then every address checked: aiohttp connects to the addresses
    returned here (and caches them), so the address checked is the address used, with no
    second lookup that DNS rebinding could change. Host header and TLS server name keep the
    URL's host name."""

    def __init__(self) -> None:
        self._resolver = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        for result in results:
            address = parse_ip_literal(result["host"])
            if address is None or not is_public_address(address):
                raise RefusedAddress(f"target host {host} resolves to non-public {result['host']}")
        return results

    async def close(self) -> None:
        await self._resolver.close()


@dataclass
class Outcome:
    """What one try got: a response (status_code set) or an error."""

    status_code: int | None = None
    headers: dict[str, str] | None = None
    body: str | None = None
    elapsed_ms: int = 0
    error: str | None = None
    retry_after_s: float | None = None


@lru_cache(maxsize=1024)
def _json_string(text: str) -> str:
    return json.dumps(text)


def request_body(event_type: str, occurred_at: datetime, payload_json: str) -> bytes:
    """The Standard Webhooks payload; the event's payload goes in as stored, not re-encoded.
    Written as json.dumps writes the dict (an RFC 3339 time needs no escaping), without
    encoding a dict for every request."""
    return (
        f'{{"type": {_json_string(event_type)}, "timestamp": "{rfc3339(occurred_at)}", '
        f'"data": {payload_json}}}'
    ).encode()


def data_json(attempt: dict[str, Any], public_url: str, now: float) -> str:
    """What goes in `data`: the payload as stored, or on a thin subscription where to fetch it."""
    if not attempt["thin"]:
        return attempt["payload"]
    token = make_token(attempt["event_id"], attempt["subscription_id"], attempt["secret"], now=now)
    return json.dumps(
        {
            "id": str(attempt["event_id"]),
            "event_id": attempt["event_ref"],
            "fetch_url": f"{public_url}/v1/fetch/{token}",
        }
    )


def batch_body(attempts: list[dict[str, Any]], public_url: str, now: float) -> bytes:
    """A batch's payload: each member as its own delivery's body plus its `id`, in ingest order
    (the event ids are time-ordered)."""
    items = []
    for attempt in sorted(attempts, key=lambda a: a["event_id"]):
        head = json.dumps(
            {
                "id": str(attempt["event_id"]),
                "type": attempt["event_type"],
                "timestamp": rfc3339(attempt["occurred_at"]),
            }
        )
        items.append(f'{head[:-1]}, "data": {data_json(attempt, public_url, now)}}}')
    head = json.dumps({"type": BATCH_TYPE, "timestamp": rfc3339(datetime.fromtimestamp(now, UTC))})
    return f'{head[:-1]}, "data": [{", ".join(items)}]}}'.encode()


@lru_cache(maxsize=4096)
def signing_key(stored: str) -> bytes:
    """The HMAC key of a secret as stored (perhaps sealed). Cached, because a batch holds many
    attempts of few subscriptions and opening a sealed secret costs a decryption."""
    return secret_key(cast(str, unseal(stored)))


def request_headers(attempt: dict[str, Any], body: bytes, timestamp: int) -> CIMultiDict[str]:
    """The subscription's own headers, then ours, which always win (the API refuses reserved
    names; this holds even for rows written before it did). A batch's `webhook-id` is the
    batch's id, the same on every try of it."""
    keys = [signing_key(attempt["secret"])]
    if attempt["previous_secret"]:
        keys.append(signing_key(attempt["previous_secret"]))
    msg_id = str(attempt["batch_id"] or attempt["event_id"])
    ours = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(keys, msg_id, timestamp, body),
    }
    if not attempt["headers"]:
        # Most subscriptions have none: made at once (an update costs five times as much).
        return CIMultiDict(ours)
    headers: CIMultiDict[str] = CIMultiDict(attempt["headers"])
    headers.update(ours)
    return headers


class Sender:
    """The one client a deliver loop shares: keep-alive, at most `concurrency` connections.
    Create it inside the running event loop; close it when done."""

    def __init__(self, settings: DeliverySettings, *, allow_private: bool) -> None:
        self._check_targets = not allow_private
        self._public_url = settings.public_url
        self._timeout = aiohttp.ClientTimeout(
            total=settings.timeout_s, connect=settings.connect_timeout_s
        )
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=settings.concurrency,
                limit_per_host=0,
                resolver=CheckingResolver() if self._check_targets else None,
            ),
            timeout=self._timeout,
            # Cookies set by one tenant's receiver must never reach another's.
            cookie_jar=aiohttp.DummyCookieJar(),
            # Proxy variables would route around the target check.
            trust_env=False,
            # Bodies are kept as text; compressed ones would only cost CPU to inflate.
            skip_auto_headers=("Accept-Encoding",),
        )

    async def close(self) -> None:
        await self._session.close()

    async def send(self, attempts: list[dict[str, Any]]) -> Outcome:
        """POST claimed attempts (DELIVERY_CLAIM rows): one alone, or the members of one batch
        together. Whatever the receiver does comes back as an Outcome, never as an exception."""
        started = time.perf_counter()
        attempt = attempts[0]
        try:
            now = time.time()
            if attempt["batch_id"] is None:
                data = data_json(attempt, self._public_url, now)
                body = request_body(attempt["event_type"], attempt["occurred_at"], data)
            else:
                body = batch_body(attempts, self._public_url, now)
            headers = request_headers(attempt, body, int(now))
            url = URL(attempt["url"])
            # aiohttp never hands an IP literal to the resolver, so it is checked here.
            if self._check_targets and parse_ip_literal(url.host or "") is not None:
                check_address(url.host or "")
            async with self._session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                content = await _read_capped(response.content, MAX_RESPONSE_BYTES)
                status = response.status
                return Outcome(
                    status_code=status,
                    headers={_clean(k): _clean(v) for k, v in _joined(response.headers).items()},
                    body=_clean(content.decode("utf-8", errors="replace")),
                    elapsed_ms=_ms_since(started),
                    error="redirect not followed" if 300 <= status < 400 else None,
                    retry_after_s=parse_retry_after(
                        response.headers.get("retry-after"), datetime.now(UTC)
                    ),
                )
        except aiohttp.ConnectionTimeoutError:
            error = f"connect timed out after {self._timeout.connect:g} s"
        except TimeoutError:
            error = f"timed out after {self._timeout.total:g} s"
        except TargetRefused as exc:
            error = f"refused: {exc}"
        except SecretUnavailable as exc:
            error = f"cannot sign: {exc}"
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, RefusedAddress):
                error = f"refused: {exc.os_error}"
            else:
                error = f"connection failed: {exc}"
        except (aiohttp.ClientError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        return Outcome(elapsed_ms=_ms_since(started), error=_clean(error))


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


async def _read_capped(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """At most `limit` bytes; the rest is never read (the connection is then not reused)."""
    chunks = []
    remaining = limit
    while remaining > 0:
        chunk = await stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _joined(headers: Any) -> dict[str, str]:
    """Response headers as one value per name (repeated ones joined, as HTTP allows), kept
    within MAX_RESPONSE_BYTES like the body: a hostile receiver's headers are not stored whole."""
    joined: dict[str, str] = {}
    room = MAX_RESPONSE_BYTES
    for name, value in headers.items():
        key = name.lower()
        room -= len(key) + len(value)
        if room < 0:
            break
        joined[key] = f"{joined[key]}, {value}" if key in joined else value
    return joined


def _clean(text: str) -> str:
    """Text PostgreSQL will store: no NUL, no lone surrogates (from undecodable header bytes)."""
    if text.isascii() and "\x00" not in text:
        return text  # the usual header or body, and no surrogate can be ASCII: kept as it is
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
