"""Running `hookpost dev` as a child process, the way `make dev` does, and waiting on it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
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

    def start(self) -> DevServer:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hookpost.cli", "dev"],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_for(self.healthy, what="the dev server's health")
        return self

    def healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"dev server exited:\n{self.process.stdout.read()}")
        try:
            return httpx.get(self.base + "/v1/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str]:
        assert self.process is not None
        self.process.send_signal(sig)
        output, _ = self.process.communicate(timeout=30)
        return self.process.returncode, output
