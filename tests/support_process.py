"""Running `hookpost dev` as a child process, the way `make dev` does, and waiting on it."""

from __future__ import annotations

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


class DevServer:
    def __init__(self, cwd: Path, env: dict[str, str], unset: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        inherited = {k: v for k, v in os.environ.items() if k not in unset}
        self.env = {**inherited, **env, "HOOKPOST_PORT": str(self.port)}
        self.cwd = cwd
        self.process: subprocess.Popen[str] | None = None
        # Everything the process printed so far, read as it comes so tests can wait on it.
        self.lines: list[str] = []

    def start(self) -> DevServer:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hookpost.cli", "dev"],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_for(self.healthy, what="the dev server's health")
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

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str]:
        assert self.process is not None
        self.process.send_signal(sig)
        self.process.wait(timeout=30)
        self._reader.join(timeout=10)
        return self.process.returncode, "".join(self.lines)
