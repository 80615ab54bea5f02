"""`make dev`: PostgreSQL, migrations, the HTTP API, and the background loops, until Ctrl-C."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import secrets
import signal
import socket
import threading
from pathlib import Path

from hookpost.local.gateway import load_handler, wsgi_app
from hookpost.local.postgres import embedded_postgres

log = logging.getLogger("hookpost.dev")

LOCAL_DIR = Path(".local")
INGEST_HANDLER = Path("functions/ingest/app.py")
API_WORKERS = int(os.environ.get("HOOKPOST_API_WORKERS", "4"))
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


def run(*, loops: bool = True) -> None:
    """Everything `make dev` runs; with loops=False only the HTTP API (`hookpost api`)."""
    _stop_with_parent()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.environ["HOOKPOST_ADMIN_TOKEN"] = _admin_token()
    # A receiver on localhost is the usual local target; an explicit `false` is honoured.
    os.environ.setdefault("HOOKPOST_ALLOW_PRIVATE_TARGETS", "true")
    # CloudWatch metrics (EMF lines on stdout) mean nothing locally.
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    port = int(os.environ.get("HOOKPOST_PORT", "3000"))
    host = os.environ.get("HOOKPOST_HOST", "127.0.0.1")

    with contextlib.ExitStack() as stack:
        if not os.environ.get("DATABASE_URL"):
            url = stack.enter_context(embedded_postgres(LOCAL_DIR / "pgdata"))
            os.environ["DATABASE_URL"] = url
            log.info("embedded PostgreSQL running, data in %s", LOCAL_DIR / "pgdata")
        serve(host, port, stop=threading.Event(), loops=loops)


def serve(host: str, port: int, stop: threading.Event, *, loops: bool = True) -> None:
    from hookpost.config import get_settings
    from hookpost.db.migrate import migrate
    from hookpost.db.pool import close_pool

    get_settings.cache_clear()
    applied = migrate(os.environ["DATABASE_URL"])
    log.info("migrations applied: %s", ", ".join(applied) or "none pending")

    # Like Lambda, each API process answers one request at a time (powertools keeps the current
    # request in class attributes); several processes share one listening socket.
    listener = socket.create_server((host, port), backlog=1024)
    workers = [
        multiprocessing.get_context("fork").Process(
            target=_api_worker, args=(listener,), name=f"hookpost-api-{n}", daemon=True
        )
        for n in range(API_WORKERS)
    ]
    for worker in workers:  # forked before this process has threads or connections
        worker.start()

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # SIGTERM (a supervisor, `timeout`) stops as cleanly as Ctrl-C.
    signal.signal(signal.SIGTERM, interrupt)
    base = f"http://{host}:{port}"
    print(f"Hookpost API:  {base}/v1  (docs: {base}/v1/docs)", flush=True)
    print(f"Admin token:   {os.environ['HOOKPOST_ADMIN_TOKEN']}", flush=True)
    background: list[threading.Thread] = []
    try:
        if loops:
            from hookpost.delivery.runners import start_in_thread
            from hookpost.jobs.periodic import run_periodically

            background.append(start_in_thread(stop))
            background.append(
                threading.Thread(target=run_periodically, args=(stop,), name="hookpost-jobs")
            )
            background[-1].start()
        while not stop.is_set() and all(worker.is_alive() for worker in workers):
            stop.wait(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        for worker in workers:
            if worker.is_alive():
                os.kill(worker.pid, signal.SIGTERM)
        # The deliver loop finishes or releases what it holds, and records it, and a job under
        # way stops at the end of its current step, before the pool goes.
        for thread in background:
            thread.join()
        for worker in workers:
            worker.join(timeout=10)
        listener.close()
        close_pool()
        log.info("stopped")


def _api_worker(listener: socket.socket) -> None:
    import waitress

    from hookpost.db.pool import close_pool

    _stop_with_parent()

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    server = waitress.create_server(
        wsgi_app(load_handler(INGEST_HANDLER)),
        sockets=[listener],
        threads=1,
        max_request_body_size=16 * 1024 * 1024,
        ident="hookpost",
    )
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        close_pool()
