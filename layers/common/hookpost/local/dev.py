"""`make dev`: PostgreSQL, migrations, the HTTP API, and the background loops, until Ctrl-C or
SIGTERM."""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import logging
import multiprocessing
import os
import re
import secrets
import signal
import socket
import sys
import threading
import warnings
from pathlib import Path
from types import FrameType

from hookpost.local.gateway import load_handler, wsgi_app
from hookpost.local.postgres import embedded_postgres

log = logging.getLogger("hookpost.dev")

LOCAL_DIR = Path(".local")
INGEST_HANDLER = Path("functions/ingest/app.py")
API_WORKERS = int(os.environ.get("HOOKPOST_API_WORKERS", "4"))
# The deliver loop's line per outcome (hookpost.delivery.loop), DEBUG everywhere but here.
OUTCOME_LOGGER = "hookpost.delivery.outcome"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_PR_SET_PDEATHSIG = 1


def _admin_token() -> str:
    """HOOKPOST_ADMIN_TOKEN, or one generated on first run and kept under .local/."""
    token = os.environ.get("HOOKPOST_ADMIN_TOKEN")
    if token:
        return token
    saved = LOCAL_DIR / "admin_token"
    if saved.exists():
        return saved.read_text().strip()
    token = "hpadmin_" + secrets.token_urlsafe(32)
    LOCAL_DIR.mkdir(exist_ok=True)
    saved.write_text(token + "\n")
    saved.chmod(0o600)
    return token


def _stop_with_parent() -> None:
    """Ask Linux for SIGTERM when our parent dies: `make` killed alone must not leave this
    process (or an API worker) running and holding the port."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGINT and SIGTERM alike: stop everything. Signals that come while stopping are ignored,
    so that a second Ctrl-C cannot cut short the deliver loop recording what it holds."""
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, _already_stopping)
    raise KeyboardInterrupt


def _already_stopping(signum: int, frame: FrameType | None) -> None:
    log.info("already stopping")


def _stop_on_signals() -> None:
    # Installed explicitly for SIGINT too: started in the background (`make dev &` in a
    # script), a process inherits SIGINT ignored, and Python then leaves it ignored.
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, _interrupt)


def _listen(host: str, port: str) -> socket.socket:
    """The API's listening socket, made before anything else starts, so that a port in use ends
    the command at once with one line rather than a traceback after PostgreSQL started."""
    try:
        return socket.create_server((host, int(port)), backlog=1024)
    except (ValueError, OverflowError):
        raise SystemExit(f"HOOKPOST_PORT={port!r} is not a port number") from None
    except OSError as exc:
        raise SystemExit(
            f"cannot listen on {host}:{port}: {exc.strerror}; set HOOKPOST_PORT to a free port"
        ) from None


def _quiet_output(loops: bool) -> None:
    """What a developer wants to see: no warning meant for Lambda, and, with the deliver loop, a
    compact line per delivery outcome (the rest of `hookpost` logs as configured)."""
    # The ingest handler flushes its CloudWatch metrics after every request, and says when it
    # has none: metrics are off locally (POWERTOOLS_METRICS_DISABLED).
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    # Each API process answers one request at a time, as a Lambda copy does: a request waiting
    # for its turn is expected, not the warning waitress makes of it.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    if loops:
        outcomes = logging.getLogger(OUTCOME_LOGGER)
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
        outcomes.addHandler(handler)
        outcomes.setLevel(logging.DEBUG)
        # Not through the `hookpost` logger: powertools makes that one print JSON.
        outcomes.propagate = False


def _without_password(url: str) -> str:
    """DATABASE_URL as it may be printed: a password given in it masked (URL or key=value)."""
    url = re.sub(r"(://[^:/@]*:)[^@/]+@", r"\1***@", url)
    return re.sub(r"(password\s*=\s*)\S+", r"\1***", url)


def run(*, loops: bool = True) -> None:
    """Everything `make dev` runs; with loops=False only the HTTP API (`hookpost api`)."""
    _stop_with_parent()
    host = os.environ.get("HOOKPOST_HOST", "127.0.0.1")
    port = os.environ.get("HOOKPOST_PORT", "3000")
    listener = _listen(host, port)
    _stop_on_signals()
    _quiet_output(loops)
    os.environ["HOOKPOST_ADMIN_TOKEN"] = _admin_token()
    # A receiver on localhost is the usual local target; an explicit `false` is honoured.
    os.environ.setdefault("HOOKPOST_ALLOW_PRIVATE_TARGETS", "true")
    # CloudWatch metrics (EMF lines on stdout) mean nothing locally.
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")

    try:
        with contextlib.ExitStack() as stack:
            stack.callback(listener.close)
            if not os.environ.get("DATABASE_URL"):
                url = stack.enter_context(embedded_postgres(LOCAL_DIR / "pgdata"))
                os.environ["DATABASE_URL"] = url
                log.info("embedded PostgreSQL running, data in %s", LOCAL_DIR / "pgdata")
            serve(listener, f"http://{host}:{port}", threading.Event(), loops=loops)
    except KeyboardInterrupt:
        pass  # stopped while starting: what had started was stopped on the way out
    log.info("stopped")


def serve(listener: socket.socket, base: str, stop: threading.Event, *, loops: bool = True) -> None:
    """Migrate, then serve the API on `listener`, known as `base` (and run the loops), until a
    stop signal."""
    from hookpost.config import get_settings
    from hookpost.db.migrate import migrate
    from hookpost.db.pool import close_pool

    get_settings.cache_clear()
    applied = migrate(os.environ["DATABASE_URL"])
    log.info("migrations applied: %s", ", ".join(applied) or "none pending")

    # Like Lambda, each API process answers one request at a time (powertools keeps the current
    # request in class attributes); several processes share one listening socket.
    workers = [
        multiprocessing.get_context("fork").Process(
            target=_api_worker, args=(listener,), name=f"hookpost-api-{n}", daemon=True
        )
        for n in range(API_WORKERS)
    ]
    background: list[threading.Thread] = []
    try:
        for worker in workers:  # forked before this process has threads or connections
            worker.start()
        if loops:
            from hookpost.delivery.runners import start_in_thread
            from hookpost.jobs.periodic import run_periodically

            background.append(start_in_thread(stop))
            background.append(
                threading.Thread(target=run_periodically, args=(stop,), name="hookpost-jobs")
            )
            background[-1].start()
        _wait(listener, base, workers, stop)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        started = [worker for worker in workers if worker.pid is not None]
        for worker in started:
            if worker.is_alive():
                os.kill(worker.pid, signal.SIGTERM)
        # The deliver loop finishes or releases what it holds, and records it, and a job under
        # way stops at the end of its current step, before the pool goes.
        for thread in background:
            thread.join()
        for worker in started:
            worker.join(timeout=10)
        close_pool()


def _wait(
    listener: socket.socket,
    base: str,
    workers: list[multiprocessing.process.BaseProcess],
    stop: threading.Event,
) -> None:
    """Until a stop signal (KeyboardInterrupt); the banner is printed once the API answers, so
    that what it tells is true when it is read."""
    host, port = listener.getsockname()[:2]
    announced = False
    while not stop.is_set():
        if not all(worker.is_alive() for worker in workers):
            raise SystemExit("an API worker exited (its error is above); stopped everything")
        if not announced and _healthy(host, port):
            _print_banner(base)
            announced = True
        stop.wait(0.5 if announced else 0.1)


def _healthy(host: str, port: int) -> bool:
    """Whether /v1/health answers 200 (the database reachable too)."""
    connection = http.client.HTTPConnection(host, port, timeout=2)
    try:
        connection.request("GET", "/v1/health")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def _print_banner(base: str) -> None:
    print(
        f"Hookpost API:  {base}/v1  (docs: {base}/v1/docs)\n"
        f"Admin token:   {os.environ['HOOKPOST_ADMIN_TOKEN']}\n"
        f"DATABASE_URL:  {_without_password(os.environ['DATABASE_URL'])}\n"
        "Ctrl-C or SIGTERM stops everything.",
        flush=True,
    )


def _api_worker(listener: socket.socket) -> None:
    import waitress

    from hookpost.db.pool import close_pool

    _stop_with_parent()
    _stop_on_signals()
    # A stop signal ends it, even while it is still loading the handler.
    with contextlib.suppress(KeyboardInterrupt):
        server = waitress.create_server(
            wsgi_app(load_handler(INGEST_HANDLER)),
            sockets=[listener],
            threads=1,
            max_request_body_size=16 * 1024 * 1024,
            ident="hookpost",
        )
        try:
            server.run()
        finally:
            server.close()
            close_pool()
