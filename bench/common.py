"""Helpers shared by the benchmark scripts: a free loopback port, the service as a pinned child
process, the commit measured, the result file, CPU pinning, and what ``/proc`` says about a
process (CPU and waiting time, memory) and the machine, and where the bundled capture is."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CAPTURE = REPO.parent / "shared" / "data" / "binance-spot-btcusdt-2024-08-08.jsonl.gz"
"""The bundled capture (BTCUSDT trades, tickers and depth20 of 2024-08-08) the benches replay."""
SERVICE_BIN = Path(sys.executable).parent / "realtime-strategies"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process(process: subprocess.Popen[bytes] | None, grace: float = 30.0) -> int | None:
    """SIGTERM ``process`` (if it still runs), wait up to ``grace`` seconds, then SIGKILL;
    its exit code (None without a process)."""
    if process is None:
        return None
    if process.poll() is None:
        process.terminate()
    try:
        return process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(timeout=10)


def spawn_service(
    args: Sequence[str], env: Mapping[str, str], cpu: int, log_path: Path, nice: int = 0
) -> subprocess.Popen[bytes]:
    """``realtime-strategies <args>`` in ``log_path``'s folder and a session of its own, pinned
    to ``cpu`` with niceness ``nice``: its stderr (the JSON log) appended to ``log_path``, its
    stdout (printed signals) discarded."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [str(SERVICE_BIN), *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            stdin=subprocess.DEVNULL,
            cwd=log_path.parent,
            preexec_fn=pin_to(cpu, nice),
            start_new_session=True,
        )


async def start_py_spy(
    directory: Path | None, pid: int, name: str
) -> asyncio.subprocess.Process | None:
    """``py-spy record`` of ``pid`` (raw collapsed stacks, 100 samples/s, not pausing it) into
    ``<directory>/<name>.txt`` (the folder must exist) until :func:`stop_py_spy`; None without
    a ``directory``."""
    if directory is None:
        return None
    return await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("py-spy")),
        "record",
        "--pid",
        str(pid),
        "--rate",
        "100",
        "--nonblocking",
        "--format",
        "raw",
        "--output",
        str(directory / f"{name}.txt"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def stop_py_spy(profiler: asyncio.subprocess.Process | None) -> None:
    """End a :func:`start_py_spy` recording (SIGINT: py-spy writes its file), if one runs."""
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        await profiler.wait()


def git_commit() -> str:
    """The short commit of the tree being measured, ``+dirty`` with uncommitted changes."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, to two places."""
    return [round(x, 2) for x in os.getloadavg()]


def document_head(benchmark: str, **host: Any) -> dict[str, Any]:
    """What every result document starts with: ``benchmark``, the UTC date to the second,
    the commit measured (:func:`git_commit`) and the host (CPUs, Python version, ``host``)."""
    return {
        "benchmark": benchmark,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": git_commit(),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(), **host},
    }


def write_document(out: Path, benchmark: str, document: Mapping[str, Any]) -> Path:
    """Write ``document`` as ``<out>/<benchmark>-<its date, without colons>.json``; the path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{benchmark}-{document['date'].replace(':', '')}.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def pin_to(cpu: int, nice: int = 0) -> Callable[[], None]:
    """A ``preexec_fn`` pinning the child to ``cpu`` (and giving it niceness ``nice``)."""

    def pin() -> None:
        os.sched_setaffinity(0, {cpu})
        if nice:
            os.setpriority(os.PRIO_PROCESS, 0, nice)

    return pin


def sched_seconds(pid: int) -> tuple[float, float]:
    """(CPU time, time spent runnable but waiting for a CPU) of ``pid``'s main thread, in
    seconds (``/proc/<pid>/schedstat``): the second one is what other load on the machine
    took from it."""
    running, waiting, _ = Path(f"/proc/{pid}/schedstat").read_text().split()
    return int(running) / 1e9, int(waiting) / 1e9


def rss_mb(pid: int | str = "self") -> float | None:
    """Resident memory of ``pid`` (default: this process) in MB; None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def latency_summary(
    values_ns: Sequence[int], quantiles: Sequence[float] = (0.5, 0.9, 0.99)
) -> dict[str, float | int | None]:
    """``count``, the nearest-rank ``quantiles`` (``p50_ms``, ``p999_ms`` for 0.999, ...) and
    ``max_ms`` of latencies in nanoseconds, in milliseconds; None but the count when empty."""
    names = [f"p{str(q).removeprefix('0.').ljust(2, '0')}_ms" for q in quantiles]
    if not values_ns:
        return {"count": 0, **dict.fromkeys(names), "max_ms": None}
    ordered = sorted(values_ns)
    n = len(ordered)

    def rank(q: float) -> float:
        return round(ordered[min(n - 1, max(0, int(q * n + 0.999999) - 1))] / 1e6, 3)

    return {
        "count": n,
        **{name: rank(q) for name, q in zip(names, quantiles, strict=True)},
        "max_ms": round(ordered[-1] / 1e6, 3),
    }
