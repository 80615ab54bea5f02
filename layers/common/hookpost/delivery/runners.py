"""The three ways a deliver loop runs, each with its own way of stopping.

`make dev`: in a thread beside the API, woken by LISTEN/NOTIFY, until the dev server's stop event
(`start_in_thread`). `hookpost deliver`: in the foreground, woken by LISTEN/NOTIFY, until SIGTERM
or Ctrl-C (`run_until_signalled`). The deliver Lambda: until shortly before the invocation's
deadline, polling only, since LISTEN would pin an RDS Proxy connection (`run_for_lambda`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable

from hookpost.config import get_settings
from hookpost.delivery.loop import Summary, Worker
from hookpost.delivery.recorder import CLOSE_MARGIN_S

log = logging.getLogger("hookpost.delivery")


def start_in_thread(stop: threading.Event) -> threading.Thread:
    """A LISTENing deliver loop in a thread, until `stop` is set (`make dev`); join it after."""
    worker = Worker(listen=True)

    def run() -> None:
        try:
            asyncio.run(worker.run())
        except Exception:
            log.exception("deliver loop crashed")

    thread = threading.Thread(target=run, name="hookpost-deliver", daemon=True)
    thread.start()
    # threading.Event has no callback; this thread turns `stop` into worker.stop().
    threading.Thread(
        target=lambda: (stop.wait(), worker.stop()), name="hookpost-deliver-stop", daemon=True
    ).start()
    return thread


def run_until_signalled() -> Summary:
    """A LISTENing deliver loop in the foreground until SIGTERM or SIGINT (`hookpost deliver`)."""
    worker = Worker(listen=True)

    async def main() -> Summary:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, worker.stop)
        return await worker.run()

    return asyncio.run(main())


def run_for_lambda(
    remaining_ms: Callable[[], int],
    on_delivered: Callable[[int], None] | None = None,
    *,
    until_idle: bool = False,
) -> Summary:
    """Deliver until shortly before the invocation's deadline (or, with until_idle, until
    nothing is due), then return what was done.

    Claiming stops early enough that every request claimed finishes within its timeout and is
    recorded before the deadline. on_delivered, until_idle: as for Worker.
    """
    settings = get_settings()
    reserve_s = settings.delivery.timeout_s + CLOSE_MARGIN_S
    claim_until = time.monotonic() + remaining_ms() / 1000 - reserve_s
    if claim_until <= time.monotonic():
        log.warning(
            "less than the request timeout plus %g s left in this invocation: nothing claimed",
            CLOSE_MARGIN_S,
        )
    worker = Worker(
        settings,
        listen=False,
        claim_until=claim_until,
        grace_s=settings.delivery.timeout_s,
        on_delivered=on_delivered,
        until_idle=until_idle,
    )
    return asyncio.run(worker.run())
