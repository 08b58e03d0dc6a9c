"""Admin/metrics API latency under a fixed request rate while the service processes data.

One command (about 75 seconds)::

    .venv/bin/python bench/api_latency.py [--rate 500] [--seconds 20] [--speed 50]

Starts ``realtime-strategies run-local`` (the real app: replay of the bundled capture as the
feed — ``--speed 50`` is about 2,000 msg/s of processing on the same event loop as the API —
SQLite config store, API on a free loopback port) pinned to one core, waits until BTCUSDT has
depth metrics, then, from this process pinned to the other core, drives each endpoint in turn
at a fixed rate for ``--seconds``:

* ``GET /api/v1/strategies/orderbook_skew/config``
* ``GET /api/v1/metrics/depth/BTCUSDT``
* ``GET /api/v1/metrics/summary``

The load is open-loop (a minimal HTTP/1.1 keep-alive client on asyncio streams, up to
``--connections`` connections): a request is started every ``1/rate`` seconds whether
or not the previous ones have answered, so a slow server cannot slow the load down and hide
its own queueing. Latency is measured from each request's scheduled start to the end of its
response body (a late start counts against the server). Errors are non-200 answers,
timeouts and connection errors.

Prints p50/p99/max and errors per endpoint and writes ``out/bench/api_latency-<UTC>.json``.
A benchmark, not a test: exits 0 unless something broke.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parents[1]
if str(REPO) not in sys.path:  # run as a script: make `bench` importable
    sys.path.insert(0, str(REPO))

from bench.common import (  # noqa: E402
    DEFAULT_CAPTURE,
    document_head,
    free_port,
    latency_summary,
    load_average,
    sched_seconds,
    spawn_service,
    start_py_spy,
    stop_process,
    stop_py_spy,
    write_document,
)

ENDPOINTS = (
    "/api/v1/strategies/orderbook_skew/config",
    "/api/v1/metrics/depth/BTCUSDT",
    "/api/v1/metrics/summary",
)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of every thread of ``pid`` (the SQLite driver's thread too)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class LocalService:
    """``realtime-strategies run-local`` on a free port, pinned to one CPU."""

    def __init__(self, capture: Path, speed: float, cpu: int, workdir: Path) -> None:
        self.port = free_port()
        self.capture = capture
        self.speed = speed
        self.cpu = cpu
        self.workdir = workdir
        self.log_path = workdir / "run-local.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL")}
        env["PYTHONUNBUFFERED"] = "1"
        args = [
            "run-local",
            "--capture",
            str(self.capture),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--sqlite",
            str(self.workdir / "config.sqlite3"),
            "--speed",
            str(self.speed),
        ]
        self.process = spawn_service(args, env, self.cpu, self.log_path)

    def wait_for_depth(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        assert self.process is not None
        with httpx.Client(base_url=self.base_url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise SystemExit(f"run-local exited with {self.process.returncode}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(ENDPOINTS[1]).status_code == 200:
                        return
                time.sleep(0.1)
        raise SystemExit(f"no BTCUSDT depth metrics within {timeout} s; see {self.log_path}")

    def stop(self) -> int | None:
        process, self.process = self.process, None
        return stop_process(process)


class Http1Pool:
    """A minimal HTTP/1.1 keep-alive client over asyncio streams (GET, ``Content-Length``
    bodies): a few tens of microseconds per request, so the load generator is never the
    bottleneck (httpx costs about a millisecond of CPU per request)."""

    def __init__(self, host: str, port: int, max_connections: int) -> None:
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self.opened = 0
        self._idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )
        self._all: list[asyncio.StreamWriter] = []

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if not self._idle.empty() or self.opened >= self.max_connections:
            return await self._idle.get()
        self.opened += 1
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self._all.append(writer)
        return reader, writer

    async def get(self, request: bytes) -> int:
        """Send a prepared GET; the status code once the whole body is read."""
        reader, writer = await self._connection()
        try:
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            status = int(status_line.split(b" ", 2)[1])
        except BaseException:
            writer.close()
            self.opened -= 1
            raise
        self._idle.put_nowait((reader, writer))
        return status

    async def close(self) -> None:
        for writer in self._all:
            writer.close()


def get_request(path: str, host: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n\r\n".encode()


async def drive(
    pool: Http1Pool, path: str, rate: float, seconds: float, limit_s: float
) -> dict[str, Any]:
    """Open-loop load: one request every 1/rate s; latency from the scheduled start."""
    total = int(rate * seconds)
    request = get_request(path, f"{pool.host}:{pool.port}")
    latencies: list[int] = []
    errors: Counter[str] = Counter()
    late_starts = 0

    async def one(scheduled_ns: int) -> None:
        try:
            status = await asyncio.wait_for(pool.get(request), limit_s)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as error:
            errors[type(error).__name__] += 1
            return
        except TimeoutError:
            errors["timeout"] += 1
            return
        finished = time.perf_counter_ns()
        if status != 200:
            errors[f"HTTP {status}"] += 1
            return
        latencies.append(finished - scheduled_ns)

    tasks: set[asyncio.Task[None]] = set()
    start_ns = time.perf_counter_ns()
    interval_ns = 1e9 / rate
    for i in range(total):
        scheduled = start_ns + int(i * interval_ns)
        delay = (scheduled - time.perf_counter_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.001:
            late_starts += 1
        task = asyncio.create_task(one(scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    offered_s = (time.perf_counter_ns() - start_ns) / 1e9
    if tasks:
        await asyncio.wait(list(tasks))
    return {
        "path": path,
        "target_rate": rate,
        "requests": total,
        "offered_rate": round(total / offered_s, 1) if offered_s > 0 else None,
        "ok": len(latencies),
        "errors": sum(errors.values()),
        "errors_by_kind": dict(errors),
        "late_starts_over_1ms": late_starts,
        "connections_opened": pool.opened,
        "latency": latency_summary(latencies),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    os.sched_setaffinity(0, {args.client_cpu})
    workdir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    service = LocalService(args.capture, args.speed, args.service_cpu, workdir)
    service.start()
    results: list[dict[str, Any]] = []
    try:
        await asyncio.to_thread(service.wait_for_depth)
        pool = Http1Pool("127.0.0.1", service.port, args.connections)
        try:
            for path in ENDPOINTS:  # warm-up: code paths hot
                request = get_request(path, f"127.0.0.1:{service.port}")
                for _ in range(50):
                    await pool.get(request)
            for path in ENDPOINTS:
                print(f"{path} at {args.rate:g} req/s for {args.seconds:g} s ...", file=sys.stderr)
                name = path.strip("/").replace("/", "_")
                profiler = await start_py_spy(args.profile, service.pid, name)
                cpu0, wait0 = sched_seconds(service.pid)
                all0 = process_cpu_seconds(service.pid)
                started = time.monotonic()
                result = await drive(pool, path, args.rate, args.seconds, args.timeout)
                wall = time.monotonic() - started
                cpu1, wait1 = sched_seconds(service.pid)
                result["service_cpu_share_all_threads"] = round(
                    (process_cpu_seconds(service.pid) - all0) / wall, 2
                )
                await stop_py_spy(profiler)
                result["service_cpu_share"] = round((cpu1 - cpu0) / wall, 2)
                result["service_cpu_wait_share"] = round((wait1 - wait0) / wall, 2)
                results.append(result)
        finally:
            await pool.close()
    finally:
        exit_code = service.stop()
    return {"endpoints": results, "service_exit_code": exit_code, "log": str(service.log_path)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="API latency at a fixed request rate.")
    parser.add_argument("--capture", type=Path, default=DEFAULT_CAPTURE)
    parser.add_argument("--rate", type=float, default=500.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="per endpoint")
    parser.add_argument("--speed", type=float, default=50.0, help="replay pace of the feed")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--service-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "out" / "bench")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy the service into DIR")
    args = parser.parse_args(argv)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    loadavg_start = load_average()
    started = time.monotonic()
    body = asyncio.run(run(args))
    document: dict[str, Any] = {
        **document_head("api_latency", loadavg_start=loadavg_start, loadavg_end=load_average()),
        "config": {
            "rate": args.rate,
            "seconds": args.seconds,
            "replay_speed": args.speed,
            "service": "realtime-strategies run-local (SQLite config store)",
            "service_cpu": args.service_cpu,
            "client_cpu": args.client_cpu,
        },
        "duration_s": round(time.monotonic() - started, 1),
        **body,
    }
    path = write_document(args.out, "api_latency", document)
    print(
        f"\nAPI latency - {document['date']} - commit {document['commit']} - run-local replaying "
        f"at {args.speed:g}x, load average {loadavg_start} -> {document['host']['loadavg_end']}"
    )
    for result in document["endpoints"]:
        lat = result["latency"]
        print(
            f"  GET {result['path']}: {result['requests']:,} requests at "
            f"{result['offered_rate']} req/s; p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, "
            f"max {lat['max_ms']} ms; errors {result['errors']} {result['errors_by_kind'] or ''}"
            f"; service CPU {result['service_cpu_share']} (all threads "
            f"{result['service_cpu_share_all_threads']}, waiting for CPU "
            f"{result['service_cpu_wait_share']})"
        )
    print(f"wrote {path} ({document['duration_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
