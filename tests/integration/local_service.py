"""``realtime-strategies run-local`` as a separate process for browser and MCP tests.

:func:`local_service` starts the embedded service (replay of the bundled capture, SQLite
config store, API on a free loopback port) with an admin token, waits until its API
answers and stops it (SIGTERM, then SIGKILL) when the test is done. The capture is replayed
fast, so live signals arrive within seconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.data import CAPTURE
from tests.integration.cli import cli_command
from tests.integration.conftest import free_port
from tests.integration.service_harness import (
    REPO_ROOT,
    UNGOVERNED,
    _die_with_parent,
    wait_until,
)

ADMIN_TOKEN = "console-test-token-5b1f"
_INHERITED = ("PATH", "HOME", "LANG", "TMPDIR", "PYTHONPATH")


def inherited_environment() -> dict[str, str]:
    """What a child process gets of the test runner's environment (nothing else leaks)."""
    return {k: v for k, v in os.environ.items() if k in _INHERITED}


@dataclass(frozen=True, slots=True)
class LocalService:
    """A running ``run-local``: its base URL, admin token and log files."""

    url: str
    token: str
    stderr: Path

    def log_tail(self, lines: int = 40) -> str:
        text = self.stderr.read_text(errors="replace") if self.stderr.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def local_service(workdir: Path, *, speed: float = 20.0) -> Iterator[LocalService]:
    """Run ``run-local`` in ``workdir`` until the ``with`` block ends."""
    port = free_port()
    env = inherited_environment()
    # The browser and MCP tests watch live signals arrive: the pre-governance cadence (the
    # governed defaults publish 2 signals over the whole capture).
    env.update(UNGOVERNED)
    env.update({"ADMIN_API_TOKEN": ADMIN_TOKEN, "LOG_LEVEL": "INFO"})
    stdout = workdir / "stdout.log"
    stderr = workdir / "stderr.log"
    command = cli_command(
        "run-local",
        "--capture",
        str(CAPTURE),
        "--port",
        str(port),
        "--sqlite",
        str(workdir / "config.sqlite3"),
        "--speed",
        str(speed),
    )
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=err,
            preexec_fn=_die_with_parent,
        )
    service = LocalService(f"http://127.0.0.1:{port}", ADMIN_TOKEN, stderr)
    try:

        def answers() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"run-local exited early:\n{service.log_tail()}")
            try:
                return httpx.get(f"{service.url}/healthz", timeout=2.0).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(answers, 60.0, "run-local's API", interval=0.2, context=service.log_tail)
        yield service
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
