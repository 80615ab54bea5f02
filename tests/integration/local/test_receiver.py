"""`hookpost receive`: the loopback receiver the README's walk-through points a subscription at
prints what a receiver gets and says whether the signature verifies."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from standardwebhooks import Webhook

from hookpost.local.receiver import serve
from hookpost.signing import generate_secret

SECRET = generate_secret()
BODY = '{"type":"invoice.paid","timestamp":"2026-12-01T10:00:00Z","data":{"amount":4200}}'


@pytest.fixture
def printed() -> Iterator[tuple[str, io.StringIO]]:
    out = io.StringIO()
    server = serve(0, status=503, secret=SECRET, out=out)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", out
    server.shutdown()
    server.server_close()


def signed_headers(secret: str) -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "content-type": "application/json",
        "webhook-id": "evt_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign("evt_1", now, BODY),
    }


def test_a_delivery_is_printed_with_its_signature_verified(printed):
    url, out = printed

    answer = httpx.post(url + "/webhooks", content=BODY, headers=signed_headers(SECRET))

    assert answer.status_code == 503, "answers with the status it was started with"
    text = out.getvalue()
    assert "POST /webhooks -> 503" in text
    assert "webhook-id: evt_1" in text
    assert "signature: valid" in text
    assert '"amount": 4200' in text


def test_a_signature_made_with_another_secret_is_shown_invalid(printed):
    url, out = printed

    httpx.post(url + "/webhooks", content=BODY, headers=signed_headers(generate_secret()))

    assert "signature: INVALID" in out.getvalue()


def test_hookpost_receive_prints_what_it_gets(tmp_path):
    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "hookpost.cli", "receive", "--port", str(port), "--secret", SECRET],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert "receiving on" in process.stdout.readline()
        answer = httpx.post(
            f"http://127.0.0.1:{port}/hooks", content=BODY, headers=signed_headers(SECRET)
        )
        assert answer.status_code == 200
        lines = [process.stdout.readline() for _ in range(6)]
        assert lines[0].startswith("POST /hooks -> 200")
        assert "  signature: valid\n" in lines
    finally:
        process.terminate()
        process.wait(timeout=10)
