"""An embedded PostgreSQL from the `pgserver` package: no root, apt or system service."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


@contextlib.contextmanager
def embedded_postgres(data_dir: Path | None) -> Iterator[str]:
    """Yield the URL of a running cluster, stopping it on exit.

    With a data directory the cluster is kept there between runs; without one it lives in a
    temporary directory that is deleted afterwards.
    """
    with warnings.catch_warnings():
        # pgserver keeps its lock file in the user's runtime directory and warns, on import,
        # when XDG_RUNTIME_DIR is unset (as in a container) that it uses /tmp/runtime-<uid>.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        import pgserver  # only a developer's machine has it

    # pgserver logs every initdb and pg_ctl run with its whole output at INFO; its errors (the
    # server's log when it cannot start) stay.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    throwaway = data_dir is None
    if throwaway:
        parent = Path(tempfile.mkdtemp(prefix="hookpost-pg-"))
        # As root, pgserver runs postgres as its own user, which must reach the directory.
        os.chmod(parent, 0o755)
        data_dir = parent / "data"
    else:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode="delete" if throwaway else "stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        if throwaway:
            shutil.rmtree(data_dir.parent, ignore_errors=True)
