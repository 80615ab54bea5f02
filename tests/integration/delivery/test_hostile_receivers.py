"""Hostile and broken receivers (issue 8, item 3): each fails its attempt cleanly with the
error stored, holds up no other delivery, and costs no more memory than the 64 KiB kept.

Covered in test_requests.py, not repeated here: a receiver slower than the timeout
(test_a_slow_receiver_times_out), a 300 kB body cut to 64 KiB
(test_at_most_64_kib_of_the_response_is_kept), a 302 not followed
(test_redirects_are_not_followed), and a host name that resolves to a private address refused
at send time (test_private_targets_are_refused_at_send_time).

aiohttp's web server answers whole responses; the answers it cannot give (a body that never
ends, a reset after the headers, a silence) come from RawReceiver, a bare asyncio server.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
import struct
import threading
import time
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from support_delivery import Receiver, delivering, settled
from support_process import wait_for

KEPT = 64 * 1024


class RawReceiver:
    """A bare asyncio HTTP/1.1 server on 127.0.0.1 in a thread. Each connection's request is
    read in full, then `respond(writer)` answers it however it likes. Counts what a test needs
    to see: requests read, connections still open, and connections the client dropped while
    the answer was still being written."""

    def __init__(self, respond: Callable[[asyncio.StreamWriter], Awaitable[None]]) -> None:
        self.respond = respond
        self.requests = 0
        self.open = 0
        self.dropped = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> RawReceiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        rest = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            self.requests += 1
            await self.respond(writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            self.dropped += 1
        finally:
            self.open -= 1
            writer.transport.abort()


async def write(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Write, and wait for the kernel to take it: a client that stops reading stops the
    writing (the socket buffers hold megabytes on loopback, no more)."""
    writer.write(data)
    await writer.drain()


@pytest.fixture
def raw() -> Iterator[Callable[..., RawReceiver]]:
    """Start RawReceivers with a respond function; all stopped at the end."""
    started: list[RawReceiver] = []

    def start(respond: Callable[..., Awaitable[None]]) -> RawReceiver:
        receiver = RawReceiver(respond).start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


def subscribe(tenant, url: str) -> dict:
    """The tenant's subscription to `url`, for every event type; invoice.paid exists."""
    tenant.event_type("invoice.paid")
    return tenant.subscription(url=url)


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST rather than a FIN (SO_LINGER with a zero timeout)."""
    writer.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
    )
    writer.transport.abort()


# Bodies that never end


def endless_gzip() -> tuple[bytes, bytes]:
    """A gzip stream's start and a segment that may follow it any number of times: each
    1 kB segment inflates to 1 MiB of "x" (a full flush between segments makes them alike)."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)
    mebibyte = b"x" * (1 << 20)
    start = deflate.compress(mebibyte) + deflate.flush(zlib.Z_FULL_FLUSH)
    segment = deflate.compress(mebibyte) + deflate.flush(zlib.Z_FULL_FLUSH)
    assert segment == deflate.compress(mebibyte) + deflate.flush(zlib.Z_FULL_FLUSH)
    return start, segment


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


BLOCK = b"x" * 16384
GZIP_START, GZIP_SEGMENT = endless_gzip()
ENDLESS = {
    # name: (status line and headers, first piece, the piece repeated forever, how many bytes
    # of body that piece is worth)
    "200, chunked": (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n",
        b"",
        chunk(BLOCK),
        len(BLOCK),
    ),
    "500, chunked": (
        b"HTTP/1.1 500 Internal Server Error\r\ntransfer-encoding: chunked\r\n",
        b"",
        chunk(BLOCK),
        len(BLOCK),
    ),
    "200, a content-length of 1 TiB": (
        b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n" % (1 << 40),
        b"",
        BLOCK,
        len(BLOCK),
    ),
    "200, gzip that inflates forever": (
        b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ntransfer-encoding: chunked\r\n",
        chunk(GZIP_START),
        chunk(GZIP_SEGMENT),
        1 << 20,
    ),
}


@pytest.mark.parametrize("kind", list(ENDLESS))
def test_a_body_that_never_ends_is_cut_at_64_kib(tenant, raw, no_retries, kind):
    head, first, repeated, worth = ENDLESS[kind]
    go = threading.Event()
    served = 0

    async def endless(writer: asyncio.StreamWriter) -> None:
        nonlocal served
        # The answer starts once memory is being traced.
        await asyncio.get_running_loop().run_in_executor(None, go.wait, 20)
        await write(writer, head + b"x-why: endless\r\n\r\n" + first)
        while True:
            await write(writer, repeated)
            served += worth

    receiver = raw(endless)
    subscribe(tenant, receiver.url)
    with delivering():
        sent = tenant.send()
        wait_for(lambda: receiver.requests == 1, timeout=10, what="the request")
        tracemalloc.start()
        try:
            go.set()
            # The client hangs up mid-body: it stopped reading, rather than read on (or
            # buffer) until the timeout.
            wait_for(lambda: receiver.dropped == 1, timeout=10, what="the client to hang up")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        (attempt,) = settled(tenant, sent["id"])

    response = attempt["response"]
    status = 500 if kind.startswith("500") else 200
    assert response is not None, attempt["error"]
    assert response["status_code"] == status
    assert response["headers"]["x-why"] == "endless"
    # Exactly the 64 KiB kept, and the attempt over well before its 2 s timeout: the outcome
    # is the receiver's answer, not a timeout.
    assert response["body"] == "x" * KEPT
    assert attempt["status"] == ("succeeded" if status == 200 else "gave_up")
    assert attempt["error"] is None
    # Whatever the receiver sent (up to what the socket buffers hold, megabytes on loopback;
    # inflated, gigabytes), the process's memory grew by far less: nothing but 64 KiB was kept.
    assert served > KEPT
    assert peak < 16 * 1024 * 1024, f"{peak / 2**20:.1f} MiB allocated during one attempt"


def test_a_body_that_trickles_forever_times_out(tenant, raw, no_retries, env):
    env(HOOKPOST_DELIVERY_TIMEOUT_S="1")

    async def trickle(writer: asyncio.StreamWriter) -> None:
        await write(writer, b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        while True:
            await write(writer, chunk(b"x"))
            await asyncio.sleep(0.05)

    receiver = raw(trickle)
    subscribe(tenant, receiver.url)
    with delivering():
        sent = tenant.send()
        (attempt,) = settled(tenant, sent["id"])
        wait_for(lambda: receiver.dropped == 1, timeout=10, what="the client to hang up")
    # A 200 whose body has not ended within the timeout is a timeout: the receiver never
    # finished answering. (It is tried again, as any failure is.)
    assert attempt["status"] == "gave_up"
    assert attempt["error"] == "timed out after 1 s"
    assert attempt["response"] is None


# Headers beyond bounds


async def a_header_line_of_1_mb(writer: asyncio.StreamWriter) -> None:
    await write(writer, b"HTTP/1.1 200 OK\r\nx-big: " + b"v" * 1_000_000 + b"\r\n\r\nok")


async def header_lines_that_never_end(writer: asyncio.StreamWriter) -> None:
    await write(writer, b"HTTP/1.1 200 OK\r\n")
    n = 0
    while True:
        await write(writer, b"x-more-%d: %s\r\n" % (n, b"v" * 100))
        n += 1


@pytest.mark.parametrize(
    ("respond", "error"),
    [
        (a_header_line_of_1_mb, "Got more than 8190 bytes when reading"),
        (header_lines_that_never_end, "Too many headers received"),
    ],
)
def test_headers_beyond_bounds_fail_the_attempt(tenant, raw, no_retries, respond, error):
    receiver = raw(respond)
    subscribe(tenant, receiver.url)
    with delivering():
        sent = tenant.send()
        (attempt,) = settled(tenant, sent["id"])
        # The client hung up: the header lines stopped.
        wait_for(lambda: receiver.open == 0, timeout=10, what="the connection closed")
    assert attempt["status"] == "gave_up"
    assert attempt["response"] is None
    assert attempt["error"].startswith("ClientResponseError: 400, message="), attempt["error"]
    assert error in attempt["error"]
    # The error quotes at most a little of what the receiver sent.
    assert len(attempt["error"]) < 1000


# Connections reset


async def reset_after_part_of_the_body(writer: asyncio.StreamWriter) -> None:
    await write(writer, b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n" + b"x" * 1000)
    reset(writer)


async def reset_after_a_chunk(writer: asyncio.StreamWriter) -> None:
    await write(
        writer, b"HTTP/1.1 500 Oops\r\ntransfer-encoding: chunked\r\n\r\n" + chunk(b"hello")
    )
    reset(writer)


async def reset_before_answering(writer: asyncio.StreamWriter) -> None:
    reset(writer)


async def never_answer(writer: asyncio.StreamWriter) -> None:
    await asyncio.Event().wait()


@pytest.mark.parametrize(
    "respond", [reset_after_part_of_the_body, reset_after_a_chunk, reset_before_answering]
)
def test_a_connection_reset_mid_response_fails_the_attempt(tenant, raw, no_retries, respond):
    receiver = raw(respond)
    subscribe(tenant, receiver.url)
    with delivering() as (worker,):
        sent = tenant.send()
        (attempt,) = settled(tenant, sent["id"])
    assert receiver.requests == 1
    assert attempt["status"] == "gave_up"
    # No half answer is kept as if it were the answer.
    assert attempt["response"] is None
    error = attempt["error"]
    if respond is reset_before_answering:
        assert error == "ClientOSError: [Errno 104] Connection reset by peer"
    else:
        # Usually the headers were read and the body broke off; should the reset have
        # overtaken the headers, it is reported as the reset itself.
        assert error.startswith(
            (
                "ClientPayloadError: Response payload is not completed",
                "ClientOSError: [Errno 104] Connection reset by peer",
            )
        ), error
    assert worker.summary.gave_up == 1


# Redirects


@pytest.mark.parametrize("status", [301, 303, 307, 308])
def test_redirects_to_private_addresses_are_not_followed(
    tenant, subscribed, receiver, raw, no_retries, status
):
    """test_requests.py covers a 302 to the receiver itself; 307 and 308 would send the
    signed POST again, and the targets here are the cloud metadata address and another
    loopback server, which sees nothing."""
    elsewhere = raw(reset_before_answering)
    locations = {
        "/hook": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "/other": elsewhere.url,
    }
    other = tenant.subscription(url=f"http://127.0.0.1:{receiver.port}/other")
    receiver.answer = lambda received: web.Response(
        status=status, headers={"Location": locations[received.path]}
    )
    with delivering():
        sent = tenant.send()
        attempts = {a["subscription_id"]: a for a in settled(tenant, sent["id"], 2)}
    for subscription in (subscribed, other):
        attempt = attempts[subscription["id"]]
        assert attempt["status"] == "gave_up"
        assert attempt["error"] == "redirect not followed"
        assert attempt["response"]["status_code"] == status
    assert attempts[subscribed["id"]]["response"]["headers"]["location"] == locations["/hook"]
    assert sorted(r.path for r in receiver.requests) == ["/hook", "/other"]
    assert elsewhere.requests == 0


# TLS


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, valid now, signed by its own key; its PEM
    file and its key's."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_a_self_signed_certificate_is_refused(tenant, no_retries, tmp_path):
    cert_file, key_file = self_signed_certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_file, key_file)
    receiver = Receiver(ssl_context=server_context).start()
    try:
        by_address = subscribe(tenant, receiver.url)
        by_name = tenant.subscription(url=f"https://localhost:{receiver.port}/hook")
        with delivering():
            sent = tenant.send()
            attempts = settled(tenant, sent["id"], 2)
        assert receiver.requests == []
        for attempt in attempts:
            assert attempt["subscription_id"] in (by_address["id"], by_name["id"])
            assert attempt["status"] == "gave_up"
            assert attempt["response"] is None
            assert attempt["error"].startswith("connection failed: "), attempt["error"]
            assert "certificate verify failed: self-signed certificate" in attempt["error"]

        # The receiver itself is sound: a client that trusts the certificate gets through.
        trusting = ssl.create_default_context(cafile=cert_file)
        assert httpx.post(receiver.url, verify=trusting, timeout=10).status_code == 200
        assert len(receiver.requests) == 1
    finally:
        receiver.stop()


def test_a_tls_handshake_that_never_finishes_times_out(tenant, raw, no_retries):
    # Accepts the connection and reads, but never answers the ClientHello (nor, not being a
    # TLS server, ever sees a whole request).
    silent = raw(never_answer)
    subscribe(tenant, f"https://127.0.0.1:{silent.port}/hook")
    with delivering():
        sent = tenant.send()
        (attempt,) = settled(tenant, sent["id"])
    assert attempt["status"] == "gave_up"
    assert attempt["error"] == "connect timed out after 1 s"
    assert silent.requests == 0


# Nothing blocks the loop


def test_hostile_receivers_do_not_hold_up_the_others(tenant, receiver, raw, fast, env):
    """One loop: while a receiver that never answers and one whose 200 trickles on forever hold
    their requests, the well-behaved receiver's attempts go out and are recorded at once."""
    env(HOOKPOST_DELIVERY_TIMEOUT_S="60", HOOKPOST_DELIVERY_CONNECT_TIMEOUT_S="5")

    async def trickle(writer: asyncio.StreamWriter) -> None:
        await write(writer, b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        while True:
            await write(writer, chunk(b"x"))
            await asyncio.sleep(0.1)

    stalled = raw(never_answer)
    trickling = raw(trickle)
    subscribe(tenant, stalled.url)
    tenant.subscription(url=trickling.url)
    normal = tenant.subscription(url=receiver.url)

    def normal_succeeded() -> int:
        params = {"subscription_id": normal["id"], "status": "succeeded", "limit": 100}
        return len(tenant.get("/attempts", params=params).json()["data"])

    with delivering() as (worker,):
        events = [{"event_type": "invoice.paid", "payload": {"n": n}} for n in range(10)]
        response = tenant.post("/events/batch", {"events": events})
        assert response.status_code == 202, response.text
        wait_for(
            lambda: (stalled.requests, trickling.requests) == (10, 10),
            timeout=20,
            what="the hostile receivers to hold 20 requests",
        )
        wait_for(lambda: normal_succeeded() == 10, timeout=20, what="10 deliveries recorded")
        # Each hostile request is still open: nothing waited for them.
        assert (stalled.open, trickling.open) == (10, 10)

        # Later events too go out promptly while the hostile receivers hold on.
        for n in range(3):
            sent_at = time.monotonic()
            sent = tenant.send(payload={"later": n})
            wait_for(lambda id=sent["id"]: receiver.to(id), timeout=20, what="a later delivery")
            assert receiver.to(sent["id"])[0].at - sent_at < 5
        wait_for(lambda: normal_succeeded() == 13, timeout=20, what="13 deliveries recorded")
        assert (stalled.open, trickling.open) == (13, 13)
    # Stopping cancelled the hostile requests and handed their attempts back.
    assert worker.summary.released == 26
    assert worker.summary.succeeded == 13


def test_huge_response_headers_are_kept_only_up_to_64_kib(tenant, subscribed, receiver):
    # 100 headers of 8,000 bytes: 800 kB that aiohttp accepts, but that is not stored whole.
    receiver.answer = lambda received: web.Response(
        headers={f"x-big-{n}": "h" * 8000 for n in range(100)}
    )
    with delivering():
        sent = tenant.send()
        (attempt,) = settled(tenant, sent["id"])
    assert attempt["status"] == "succeeded"
    stored = attempt["response"]["headers"]
    assert 0 < sum(len(k) + len(v) for k, v in stored.items()) <= 64 * 1024
