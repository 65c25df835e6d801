"""The real service in a process of its own, on 127.0.0.1 and a free port.

A :class:`Server` runs ``uvicorn service.app:create_app`` by default, or any command line
that serves (``vecserve serve``, ``vecserve quickstart``) given as ``command``, to which
it adds ``--data`` and ``--port``. It is started by ``with`` (or :meth:`Server.start`),
which returns once ``GET /readyz`` answers 200, and stopped by SIGTERM to its pid.
Tests get servers from the session's ``new_server`` fixture (tests/conftest.py), which
gives each a fresh data folder and stops any still running when the session ends; the
benchmarks start their own.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import httpx

UVICORN = [sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory"]


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_ready(url: str, process: subprocess.Popen[Any], timeout_s: float = 30) -> None:
    """Return once ``GET {url}/readyz`` answers 200; raise if ``process`` exits first or
    ``timeout_s`` goes by."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            output = "".join(str(part) for part in process.communicate() if part)
            raise RuntimeError(f"{process.args} exited with {process.returncode}\n{output}")
        time.sleep(0.1)
    raise RuntimeError(f"{process.args} was not ready in {timeout_s:.0f} s")


class Server:
    """The real service on ``data_dir``, in its own process.

    ``env`` adds to the environment of the tests' process, from which every ``VECSERVE_``
    variable is left out (a server's settings are the test's, the device the CPU unless
    ``env`` says otherwise), and so is ``PYTEST_CURRENT_TEST``: a server is not a test
    (skimage, seeing it, raises pytest's Skipped where it cannot download a photo).
    ``popen`` goes to :class:`subprocess.Popen` (where its output goes, as text or bytes).
    """

    def __init__(
        self,
        data_dir: Path,
        env: Mapping[str, str] | None = None,
        *,
        command: Sequence[str] | None = None,
        ready_s: float = 30,
        **popen: Any,
    ) -> None:
        self.data_dir = data_dir
        self.env = {"VECSERVE_DEVICE": "cpu", **(env or {})}
        self.command = command
        self.ready_s = ready_s
        self.popen = popen
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[Any] | None = None

    def argv(self) -> list[str]:
        if self.command is None:
            where = ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
            return [*UVICORN, *where]
        return [*self.command, "--data", str(self.data_dir), "--port", str(self.port)]

    def start(self) -> None:
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("VECSERVE_") and key != "PYTEST_CURRENT_TEST"
        }
        env = {**inherited, "VECSERVE_DATA_DIR": str(self.data_dir), **self.env}
        self.process = subprocess.Popen(self.argv(), env=env, **self.popen)
        try:
            wait_until_ready(self.url, self.process, self.ready_s)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM, then wait for the process to exit (it may already have); one that has
        not exited after 30 s is killed, so that no server outlives its test."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class NewServer(Protocol):
    """The ``new_server`` fixture: a :class:`Server` on ``data_dir`` (a fresh folder by
    default), made with ``env`` and ``options`` (see :class:`Server`), not yet started."""

    def __call__(
        self, env: Mapping[str, str] | None = None, *, data_dir: Path | None = None, **options: Any
    ) -> Server: ...
