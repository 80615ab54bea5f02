"""Running `hookpost dev` as a child process, the way `make dev` does, waiting on it, and ending
it and everything it started."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


def group_members(pgid: int) -> list[int]:
    """The live processes of a process group (zombies aside: they are only waiting to be
    reaped)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except OSError:  # gone meanwhile
            continue
        if int(pgrp) == pgid and state != "Z":
            members.append(int(stat.parent.name))
    return members


class DevServer:
    """`hookpost dev` as a child process in a process group of its own, so that `stop` can
    find and end everything it started. With `sigint_ignored` it starts as `make dev &` does
    in a script: a background job of a non-interactive shell inherits SIGINT ignored."""

    def __init__(
        self,
        cwd: Path,
        env: dict[str, str],
        unset: tuple[str, ...] = (),
        *,
        port: int | None = None,
        sigint_ignored: bool = False,
    ) -> None:
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        inherited = {k: v for k, v in os.environ.items() if k not in unset}
        self.env = {**inherited, **env, "HOOKPOST_PORT": str(self.port)}
        self.cwd = cwd
        self.sigint_ignored = sigint_ignored
        self.process: subprocess.Popen[str] | None = None
        # Everything the process printed so far, read as it comes so tests can wait on it.
        self.lines: list[str] = []
        # The processes of its group still running when it had exited (then killed).
        self.strays: list[int] = []

    def launch(self) -> DevServer:
        """Start it, without waiting for anything."""
        command = [sys.executable, "-m", "hookpost.cli", "dev"]
        if self.sigint_ignored:
            command = ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *command]
        self.process = subprocess.Popen(
            command,
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            process_group=0,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def start(self) -> DevServer:
        """Start it and wait until its API answers and it has said so."""
        self.launch()
        wait_for(
            lambda: self.healthy() and self.printed("Hookpost API:"), what="the dev server ready"
        )
        return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def printed(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            self._reader.join(timeout=5)
            raise RuntimeError("dev server exited:\n" + "".join(self.lines))
        try:
            return httpx.get(self.base + "/v1/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def children(self) -> list[int]:
        """The processes it forked (its API workers)."""
        assert self.process is not None
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children")
        return [int(child) for child in children.read_text().split()]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> tuple[int, str]:
        """Send `sig` to the process, as a supervisor would (SIGINT: as Ctrl-C would, in a
        terminal that sends it to one process), then `wait`."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.wait(timeout)

    def wait(self, timeout: float = 30.0) -> tuple[int, str]:
        """Wait up to `timeout` for the process to exit; then end whatever is left of its
        group, itself included if it did not exit: SIGTERM, and SIGKILL 5 s later. Always
        safe to call again. Its exit code (negative: killed by that signal) and output."""
        assert self.process is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)
        pgid = self.process.pid
        self.strays = group_members(pgid)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not group_members(pgid):
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, sig)
            with contextlib.suppress(TimeoutError):
                wait_for(lambda: not group_members(pgid), timeout=5, what="the group to end")
        self.process.wait(timeout=5)
        self._reader.join(timeout=10)
        postmaster = self.cwd / ".local" / "pgdata" / "postmaster.pid"
        if self.process.returncode < 0 and postmaster.exists():
            # Killed, it could not stop the embedded PostgreSQL it started, which pg_ctl runs
            # in a session of its own: stopped here (immediate shutdown).
            with contextlib.suppress(ValueError, OSError):
                os.kill(int(postmaster.read_text().split()[0]), signal.SIGQUIT)
        return self.process.returncode, "".join(self.lines)
