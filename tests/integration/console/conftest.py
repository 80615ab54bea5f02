"""Browser fixtures: the API (and its console) on a real loopback port, served by waitress from
the same WSGI translation `make dev` uses, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from waitress.server import create_server

from support_delivery import settle_strays

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

# Deliveries at test speed: a failure is final at once (the console retries, replays and
# recovers by hand), the loops poll often, and three failures open a circuit for a minute.
DELIVERY = {
    "HOOKPOST_RETRY_FAST_COUNT": "0",
    "HOOKPOST_RETRY_SLOW_COUNT": "0",
    "HOOKPOST_RETRY_JITTER": "0",
    "HOOKPOST_DELIVERY_POLL_S": "0.05",
    "HOOKPOST_DELIVERY_TIMEOUT_S": "2",
    "HOOKPOST_DELIVERY_CONNECT_TIMEOUT_S": "1",
    "HOOKPOST_DELIVERY_STOP_GRACE_S": "0.5",
    "HOOKPOST_CIRCUIT_FAILURES": "3",
    "HOOKPOST_CIRCUIT_COOLDOWN_S": "60",
}


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        pytest.fail(
            f"the console tests need Debian's chromium at {CHROMIUM}: run `make test` as root"
            " (it installs it), or `apt-get install -y chromium`"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def console_url(database_url: str, ingest_handler) -> Iterator[str]:
    """The API's base URL on a free loopback port; /console is the console."""
    from hookpost.local.gateway import wsgi_app

    # One request at a time: the resolver keeps the current request in class attributes, as on
    # Lambda (`make dev` runs processes for concurrency).
    server = create_server(wsgi_app(ingest_handler), host="127.0.0.1", port=0, threads=1)
    stopping = threading.Event()

    def serve() -> None:
        try:
            server.run()
        except OSError:
            # Closing the listening socket under the running loop ends it this way.
            if not stopping.is_set():
                raise

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}"
    stopping.set()
    server.close()
    thread.join(timeout=10)


@pytest.fixture
def api(console_url: str) -> Iterator[httpx.Client]:
    """The tests' own API calls go over HTTP to the same server as the browser's, so the one
    resolver never serves two requests at once."""
    with httpx.Client(base_url=console_url, timeout=30) as client:
        yield client


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh tab (its own storage) that fails the test on any error the page throws."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, errors


@pytest.fixture
def deliveries(env, database_url) -> None:
    env(**DELIVERY)
    settle_strays(database_url)
