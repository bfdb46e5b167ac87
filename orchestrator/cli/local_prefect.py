"""Prefect's temporary local server, started first thing by a command that runs a flow in-process.

Without a Prefect server configured, Prefect starts a temporary one (a ``uvicorn`` process serving
``prefect.server.api.server:create_app``) when the flow's first API call is made: after this process
has imported Prefect's client, the server's modules and the project, and then the server takes
3-6 s of its own to answer. ``orchestrator outage notify`` without a server took 6.6-7 s to its
first message that way. Here the same server process is spawned as soon as Prefect's settings say
none is configured, so it starts while this process is still importing; the flow then runs against
it (``use``). If it does not come up, nothing is set and Prefect starts its own as before.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

STARTUP_TIMEOUT_SECONDS = 120.0


class LocalServer:
    """A temporary Prefect server spawned early; ``api_url`` once it answers, else ``None``."""

    def __init__(self) -> None:
        self.api_url: str | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._ready = threading.Event()

    def start(self) -> LocalServer:
        from prefect.settings import get_current_settings

        settings = get_current_settings()
        if settings.api.url or not settings.server.ephemeral.enabled:
            self._ready.set()  # a server is configured (or Prefect may not start one): nothing to do
            return self
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        import prefect

        # Prefect's own command for its temporary server (prefect.server.api.server.SubprocessASGIServer).
        env = {**os.environ, **settings.to_environment_variables(exclude_unset=True),
               "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent), "--factory",
             "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "error", "--lifespan", "on"], env=env)
        atexit.register(self.stop)
        threading.Thread(target=self._wait, args=(f"http://127.0.0.1:{port}/api",), daemon=True).start()
        return self

    @contextlib.contextmanager
    def use(self) -> Iterator[None]:
        """Runs the body against the early server once it answers (or as Prefect would without it)."""
        self._ready.wait(STARTUP_TIMEOUT_SECONDS)
        if self.api_url is None:
            yield
            return
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: self.api_url}):
            yield

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()

    def _wait(self, api_url: str) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        try:
            while time.monotonic() < deadline and self._process is not None and self._process.poll() is None:
                try:
                    with urllib.request.urlopen(f"{api_url}/health", timeout=2) as answer:
                        if answer.status == 200:
                            self.api_url = api_url
                            return
                except OSError:
                    time.sleep(0.1)
            self.stop()  # did not come up: Prefect starts its own when the flow needs it
        finally:
            self._ready.set()


def start_local_server() -> Any:
    """A ``LocalServer`` started now (does nothing where a Prefect server is configured)."""
    return LocalServer().start()
