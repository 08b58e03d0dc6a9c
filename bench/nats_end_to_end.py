"""Service over real NATS: sustained throughput, loss and event → signal latency (SPEC §10).

One command (about two and a half minutes)::

    .venv/bin/python bench/nats_end_to_end.py [--capture FILE] [--nats-url URL] [--profile DIR]

For each fan-out (50 and 500 symbols by default):

1. **Baseline**: a do-nothing nats-py subscriber process (same subscription options as the
   service's feed, pinned to the service's core) counts a full-speed burst of ``--burst``
   messages: the ceiling of a Python NATS consumer on this machine.
2. **Service**: ``realtime-strategies serve`` (``CONFIG_STORE=memory``, ``TRADING_SYMBOLS=*``,
   subjects unique to the run, heartbeat and config refresh off) pinned to one core. This
   process, pinned to the other core, is the load generator: it replays the bundled capture
   fanned out to N symbols (stream prefix and ``data.s`` rewritten), re-stamping every
   message with the wall clock (``E``/``T`` and the envelope ``timestamp``, strictly
   increasing per symbol, so each message of a symbol has an event time of its own) and
   ``message_id = bench-<publish ns>-<seq>``. Phases:

   * ``full_speed`` (shipped configuration, 30 s cooldowns): ``--burst`` messages as fast as
     the generator can publish, between two marker depth snapshots that always yield an
     ``orderbook_skew`` signal; rate = burst / (end marker's signal − start marker's signal).
     One subscription is handled in order, so the end marker's signal means every message
     before it was processed.
   * ``sustained``: ``--sustain-fraction`` of that rate, fixed, for ``--sustain-seconds``.
   * cooldowns set to 0 through the admin API (a signal for about a third of the messages:
     enough latency samples, and the heavier path — every signal is encoded and published),
     then ``fixed_2000`` and ``fixed_20000``: latency from a message's publish time to the
     receipt of a signal it caused. A signal carries its causing event's time, so the
     generator keeps ``(symbol, event time ms) → publish ns`` and the signal collector (a
     second NATS connection of this process) looks it up; the service is not changed.
   * ``full_speed_signal_heavy``: the burst again with cooldowns 0.

   After every phase the bench waits until ``realtime_strategies_messages_processed_total``
   (``/metrics``) equals what was published and reads the NATS slow-consumer counter (the
   server's ``/varz``): zero loss is checked, not assumed.

CPU accounting: the service's CPU time and the time it was runnable but waiting for a CPU
(``/proc/<pid>/schedstat``) are reported per phase, and throughput also per CPU-second, so a
run on a machine shared with other work can be told apart from a slow service.

By default the bench starts a private ``nats-server`` with its monitoring port (for the
slow-consumer counter); ``--nats-url`` uses an existing server instead (no slow-consumer
figure then). Figures are printed and written to ``out/bench/nats_end_to_end-<UTC>.json``.
It is a benchmark, not a test: it reports the targets (≥ 20,000 msg/s, ratio ≥ 0.4,
p99 ≤ 5 ms at 2,000 msg/s, zero loss) as met or missed and exits 0 unless something broke.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nats
import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from prometheus_client.parser import text_string_to_metric_families

from adapters.wire.binance import iso_to_epoch_ms

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parents[1]
if str(REPO) not in sys.path:  # run as a script: make `bench` importable
    sys.path.insert(0, str(REPO))

from bench.common import (  # noqa: E402
    DEFAULT_CAPTURE,
    cpu_model,
    document_head,
    free_port,
    latency_summary,
    load_average,
    pin_to,
    rss_mb,
    sched_seconds,
    spawn_service,
    start_py_spy,
    stop_process,
    stop_py_spy,
    write_document,
)
from tests.integration.service_harness import (  # noqa: E402
    UNGOVERNED,
    Topics,
    nats_server_command,
)

QUEUE_GROUP = "realtime-strategies-group"
SUB_PENDING_MSGS = 500_000  # the service's NatsMarketFeed limits
SUB_PENDING_BYTES = 256 * 1024 * 1024
COOLDOWN_STRATEGIES = ("orderbook_skew", "trade_momentum", "ticker_velocity")

TARGET_MSGS_PER_S = 20_000.0
TARGET_RATIO = 0.4
TARGET_P99_MS = 5.0


# --------------------------------------------------------------------------------------------
# small helpers


NICE = 0
"""Niceness of the bench's processes (``--nice``; negative needs root)."""


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())


def metric_sums(text: str) -> dict[str, float]:
    """Prometheus exposition → {metric name: sum over every label set}."""
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
    return sums


# --------------------------------------------------------------------------------------------
# the load: capture messages as byte templates, fanned out and re-stamped


@dataclass(frozen=True, slots=True)
class Template:
    """One capture message with %-placeholders: sl/su (symbol lower/upper), e (event ms),
    ts (ISO timestamp), mid (message id); ``event_ms`` is its event time in the capture."""

    kind: str
    pattern: bytes
    event_ms: int


_SENTINELS = {
    "QQSLQQ": b"%(sl)b",
    "QQSUQQ": b"%(su)b",
    "QQTSQQ": b"%(ts)b",
    "QQMIDQQ": b"%(mid)b",
}


def load_templates(path: Path) -> list[Template]:
    templates: list[Template] = []
    with gzip.open(path, "rb") as handle:
        for raw in handle:
            if not raw.strip():
                continue
            envelope = orjson.loads(raw)
            stream: str = envelope["stream"]
            _, _, rest = stream.partition("@")
            data = envelope["data"]
            event_ms = data.get("E")
            if not isinstance(event_ms, int):
                event_ms = iso_to_epoch_ms(envelope["timestamp"])
            envelope["stream"] = f"QQSLQQ@{rest}"
            envelope["timestamp"] = "QQTSQQ"
            envelope["message_id"] = "QQMIDQQ"
            kind = rest.split("@", 1)[0]
            if "s" in data:
                data["s"] = "QQSUQQ"
            if "E" in data:
                data["E"] = "QQEQQ"
            if "T" in data and kind in ("trade", "aggTrade"):
                data["T"] = "QQEQQ"
            pattern = orjson.dumps(envelope).replace(b"%", b"%%")
            pattern = pattern.replace(b'"QQEQQ"', b"%(e)b")
            for sentinel, placeholder in _SENTINELS.items():
                pattern = pattern.replace(sentinel.encode(), placeholder)
            templates.append(Template(kind, pattern, event_ms))
    if not templates:
        raise SystemExit(f"no messages in {path}")
    return templates


class IsoClock:
    """Epoch ms → ``YYYY-MM-DDTHH:MM:SS.mmmZ`` bytes, the second's prefix cached."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = b""

    def iso(self, ms: int) -> bytes:
        second, milli = divmod(ms, 1000)
        if second != self._second:
            moment = dt.datetime.fromtimestamp(second, tz=dt.UTC)
            self._prefix = moment.strftime("%Y-%m-%dT%H:%M:%S").encode()
            self._second = second
        return b"%b.%03dZ" % (self._prefix, milli)


def marker_message(symbol: str, event_ms: int, iso: bytes, seq: int) -> bytes:
    """A spot depth20 snapshot with bid volume 10x the ask volume and a 1 bp spread: an
    ``orderbook_skew`` buy on any configuration within the parameter bounds."""
    bids = [[f"{100.0 - 0.01 * i:.2f}", "10.0"] for i in range(20)]
    asks = [[f"{100.01 + 0.01 * i:.2f}", "1.0"] for i in range(20)]
    envelope = {
        "stream": f"{symbol.lower()}@depth20@100ms",
        "data": {"lastUpdateId": seq, "bids": bids, "asks": asks},
        "timestamp": iso.decode(),
        "message_id": f"bench-marker-{seq}",
        "source": "bench",
        "version": "1.0",
    }
    del event_ms  # the event time of a spot snapshot is its envelope timestamp
    return orjson.dumps(envelope)


@dataclass(slots=True)
class PhaseCounts:
    published: int = 0
    started_ns: int = 0
    finished_ns: int = 0

    @property
    def rate(self) -> float:
        seconds = (self.finished_ns - self.started_ns) / 1e9
        return self.published / seconds if seconds > 0 else 0.0


class LoadGenerator:
    """Publishes the fanned-out capture; remembers publish times for latency when asked."""

    def __init__(self, nc: Client, subject: str, templates: list[Template], symbols: int) -> None:
        self.nc = nc
        self.subject = subject
        self.templates = templates
        self.symbols = symbols
        self.upper = [f"B{i:03d}USDT".encode() for i in range(symbols)]
        self.lower = [s.lower() for s in self.upper]
        self.names = [s.decode() for s in self.upper]
        self.last_ms = [0] * symbols
        self.iso = IsoClock()
        self.sequence = 0
        self.published_total = 0
        self.sent_at: dict[tuple[str, int], int] = {}
        self.markers = 0

    def _next(self, record: bool) -> bytes:
        k = self.sequence
        self.sequence = k + 1
        symbols = self.symbols
        sym = k % symbols
        template = self.templates[(k // symbols) % len(self.templates)]
        now_ns = time.time_ns()
        ms = now_ns // 1_000_000
        last = self.last_ms[sym]
        if ms <= last:
            ms = last + 1
        self.last_ms[sym] = ms
        if record:
            self.sent_at[(self.names[sym], ms)] = now_ns
        return template.pattern % {
            b"sl": self.lower[sym],
            b"su": self.upper[sym],
            b"e": b"%d" % ms,
            b"ts": self.iso.iso(ms),
            b"mid": b"bench-%d-%d" % (now_ns, k),
        }

    async def publish_marker(self, symbol: str) -> None:
        ms = time.time_ns() // 1_000_000
        self.markers += 1
        await self.nc.publish(
            self.subject, marker_message(symbol, ms, self.iso.iso(ms), self.markers)
        )
        self.published_total += 1
        await self.nc.flush()

    async def fixed_rate(self, rate: float, seconds: float, record: bool) -> PhaseCounts:
        """``rate`` msg/s for ``seconds``: every tick publishes what is due by then."""
        total = int(rate * seconds)
        publish = self.nc.publish
        subject = self.subject
        counts = PhaseCounts(started_ns=time.time_ns())
        start = time.perf_counter()
        sent = 0
        while sent < total:
            due = min(total, int((time.perf_counter() - start) * rate) + 1)
            while sent < due:
                await publish(subject, self._next(record))
                sent += 1
            delay = start + sent / rate - time.perf_counter()
            await asyncio.sleep(delay if delay > 0 else 0)
        await self.nc.flush()
        counts.finished_ns = time.time_ns()
        counts.published = sent
        self.published_total += sent
        return counts

    async def full_speed(self, count: int) -> PhaseCounts:
        publish = self.nc.publish
        subject = self.subject
        counts = PhaseCounts(started_ns=time.time_ns())
        for _ in range(count):
            await publish(subject, self._next(False))
        await self.nc.flush()
        counts.finished_ns = time.time_ns()
        counts.published = count
        self.published_total += count
        return counts


class SignalCollector:
    """Receives the service's signals; keeps (receive ns, payload) for later decoding."""

    def __init__(self) -> None:
        self.total = 0
        self.received: list[tuple[int, bytes]] = []
        self.marker_seen: dict[str, int] = {}
        self.marker_prefix = b'"symbol":"MARK'

    async def on_signal(self, msg: Msg) -> None:
        now = time.time_ns()
        data = msg.data
        self.total += 1
        if self.marker_prefix in data:
            symbol = orjson.loads(data)["symbol"]
            self.marker_seen.setdefault(symbol, now)
            return
        self.received.append((now, data))

    async def wait_marker(self, symbol: str, timeout: float) -> int | None:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while symbol not in self.marker_seen:
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.001)
        return self.marker_seen[symbol]

    def take(self) -> list[tuple[int, bytes]]:
        out, self.received = self.received, []
        return out


def match_latencies(
    received: list[tuple[int, bytes]], sent_at: dict[tuple[str, int], int]
) -> tuple[list[int], int]:
    """Latency (ns) of every signal whose causing message is known; and the unmatched count."""
    latencies: list[int] = []
    unmatched = 0
    for received_ns, payload in received:
        body = orjson.loads(payload)
        key = (body["symbol"], iso_to_epoch_ms(body["timestamp"]))
        published_ns = sent_at.get(key)
        if published_ns is None:
            unmatched += 1
            continue
        latencies.append(received_ns - published_ns)
    return latencies, unmatched


def phase_figures(
    counts: PhaseCounts,
    received: list[tuple[int, bytes]],
    sent_at: dict[tuple[str, int], int],
    cpu_before: tuple[float, float],
    cpu_after: tuple[float, float],
    wall: float,
) -> dict[str, Any]:
    """What a fixed-rate phase of ``wall`` seconds gave: messages published and the rate
    achieved, the latency of every signal (``received``, matched to ``sent_at``), the signals
    matched to no message, and the service's CPU and CPU-wait shares (:func:`sched_seconds`
    before and after)."""
    latencies, unmatched = match_latencies(received, sent_at)
    return {
        "published": counts.published,
        "achieved_msgs_per_s": round(counts.rate, 1),
        "latency": latency_summary(latencies, (0.5, 0.9, 0.99, 0.999)),
        "signals_unmatched": unmatched,
        "service_cpu_share": round((cpu_after[0] - cpu_before[0]) / wall, 2),
        "service_cpu_wait_share": round((cpu_after[1] - cpu_before[1]) / wall, 2),
    }


# --------------------------------------------------------------------------------------------
# processes: private nats-server, baseline subscriber, the service


class NatsServer:
    """A private nats-server with its monitoring port (for the slow-consumer counters)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.monitor_port = free_port()
        self.log = workdir / "nats-server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = nats_server_command(self.port, "-m", str(self.monitor_port))
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if http_get(f"http://127.0.0.1:{self.monitor_port}/healthz", 1.0)[0] == 200:
                    return
            time.sleep(0.05)
        raise SystemExit(f"nats-server did not start; see {self.log}")

    def varz(self) -> dict[str, Any]:
        status, body = http_get(f"http://127.0.0.1:{self.monitor_port}/varz")
        return dict(json.loads(body)) if status == 200 else {}

    def slow_consumers(self) -> int:
        return int(self.varz().get("slow_consumers", 0))

    def pending_bytes(self, connection_name: str) -> int | None:
        """Bytes the server holds for the named client connection (not yet written to it)."""
        status, body = http_get(f"http://127.0.0.1:{self.monitor_port}/connz?limit=1024", 2.0)
        if status != 200:
            return None
        for connection in json.loads(body).get("connections", []):
            if connection.get("name") == connection_name:
                return int(connection.get("pending_bytes", 0))
        return None

    def stop(self) -> None:
        process, self.process = self.process, None
        stop_process(process, grace=10.0)


async def baseline_subscriber(url: str, subject: str, expected: int, idle: float) -> None:
    """The do-nothing consumer: counts messages; prints READY, then one JSON line."""
    nc = await nats.connect(url, name="bench-baseline", pending_size=64 * 1024 * 1024)
    count = 0
    first = 0
    last = 0
    cpu_first = 0.0
    cpu_last = 0.0
    done = asyncio.Event()

    async def on_message(msg: Msg) -> None:
        nonlocal count, first, last, cpu_first, cpu_last
        now = time.time_ns()
        if count == 0:
            first = now
            cpu_first = time.process_time()
        count += 1
        last = now
        if count & 1023 == 0 or count >= expected:
            cpu_last = time.process_time()
        if count >= expected:
            done.set()

    await nc.subscribe(
        subject,
        queue=QUEUE_GROUP,
        cb=on_message,
        pending_msgs_limit=SUB_PENDING_MSGS,
        pending_bytes_limit=SUB_PENDING_BYTES,
    )
    await nc.flush()
    print("READY", flush=True)
    seen = -1
    while not done.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), idle)
        if count == seen and count > 0:
            break  # nothing new for `idle` seconds: some were lost
        seen = count
    result = {"count": count, "first_ns": first, "last_ns": last, "cpu_s": cpu_last - cpu_first}
    print(json.dumps(result), flush=True)
    await nc.close()


@dataclass
class ServiceProcess:
    env: dict[str, str]
    cpu: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.env['FASTAPI_PORT']}"

    def start(self) -> None:
        self.process = spawn_service(["serve"], self.env, self.cpu, self.log_path, NICE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"service exited with {self.process.returncode}; {self.log_path}")
            with contextlib.suppress(OSError):
                if http_get(f"{self.base_url}/ready", 1.0)[0] == 200:
                    return
            time.sleep(0.1)
        raise SystemExit(f"service not ready within 60 s; see {self.log_path}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def metrics(self) -> dict[str, float]:
        status, body = http_get(f"{self.base_url}/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        return metric_sums(body.decode())

    def processed(self) -> int:
        return int(self.metrics().get("realtime_strategies_messages_processed_total", 0.0))

    def set_cooldowns(self, seconds: int) -> None:
        """Set ``cooldown_seconds`` of the cooldown strategies through the admin API."""
        for strategy in COOLDOWN_STRATEGIES:
            body = json.dumps(
                {
                    "parameters": {"cooldown_seconds": seconds},
                    "changed_by": "bench",
                    "reason": "nats_end_to_end: signal-heavy phases",
                }
            ).encode()
            request = urllib.request.Request(
                f"{self.base_url}/api/v1/strategies/{strategy}/config",
                data=body,
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                if response.status != 200:
                    raise RuntimeError(f"setting {strategy} cooldown: HTTP {response.status}")

    def log_count(self, needle: str) -> int:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace").count(needle)
        return 0

    def slow_consumer_log_count(self) -> int:
        """``nats_error`` slow-consumer lines of the service log (suppressed ones included)."""
        total = 0
        with contextlib.suppress(OSError):
            for line in self.log_path.read_text(errors="replace").splitlines():
                if '"nats_error"' not in line or "slow consumer" not in line.lower():
                    continue
                with contextlib.suppress(ValueError):
                    total += 1 + int(json.loads(line).get("suppressed_since_last", 0))
        return total

    def stop(self) -> int | None:
        process, self.process = self.process, None
        return stop_process(process)


# --------------------------------------------------------------------------------------------
# the run


@dataclass
class FanoutResult:
    symbols: int
    baseline: dict[str, Any] = field(default_factory=dict)
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)
    service: dict[str, Any] = field(default_factory=dict)


def service_env(topics: Topics, nats_url: str, port: int) -> dict[str, str]:
    passed = ("PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k in passed}
    env.update(
        {
            "NATS_URL": nats_url,
            "NATS_CONSUMER_TOPIC": topics.consumer,
            "NATS_PUBLISHER_TOPIC": topics.signals,
            "NATS_CONFIG_CHANGE_TOPIC": topics.config_changed,
            "NATS_DOMINANCE_TOPIC": topics.dominance,
            "NATS_QUOTES_TOPIC": topics.quotes,
            "NATS_ONCHAIN_TOPIC": topics.onchain,
            "NATS_CONSUMER_NAME": f"bench-service-{topics.run_id}",
            "CONFIG_STORE": "memory",
            "TRADING_SYMBOLS": "*",
            "FASTAPI_HOST": "127.0.0.1",
            "FASTAPI_PORT": str(port),
            "HEARTBEAT_INTERVAL_SECONDS": "86400",
            "CONFIG_REFRESH_INTERVAL_SECONDS": "86400",
            "LOG_LEVEL": "INFO",
            "OTEL_EXPORTER": "none",
            "PYTHONUNBUFFERED": "1",
        }
    )
    # The start/end markers and the latency probes are signals: measured at the cadence of the
    # service before signal governance (no hysteresis, caps or confidence floor), which would
    # otherwise hold them. The gate's own cost: bench/service_path.py's instruction count.
    env.update(UNGOVERNED)
    return env


class Bench:
    def __init__(self, args: argparse.Namespace, nats_url: str, server: NatsServer | None):
        self.args = args
        self.nats_url = nats_url
        self.server = server
        self.templates = load_templates(args.capture)
        self.workdir = Path(tempfile.mkdtemp(prefix="bench-nats-"))

    def slow_consumers(self) -> int | None:
        return self.server.slow_consumers() if self.server is not None else None

    async def run_baseline(self, symbols: int, topics: Topics) -> dict[str, Any]:
        subject = topics.subject(f"baseline.{symbols}")
        burst = self.args.burst
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            "baseline-subscriber",
            "--nats-url",
            self.nats_url,
            "--subject",
            subject,
            "--expected",
            str(burst),
            stdout=asyncio.subprocess.PIPE,
            preexec_fn=pin_to(self.args.service_cpu, NICE),
        )
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 30)
        if line.strip() != b"READY":
            raise SystemExit(f"baseline subscriber did not start: {line!r}")
        slow_before = self.slow_consumers()
        nc = await nats.connect(self.nats_url, name="bench-generator-baseline")
        generator = LoadGenerator(nc, subject, self.templates, symbols)
        sent = await generator.full_speed(burst)
        out, _ = await asyncio.wait_for(child.communicate(), 120)
        await nc.close()
        report = json.loads(out.decode().strip().splitlines()[-1])
        received = int(report["count"])
        seconds = (report["last_ns"] - report["first_ns"]) / 1e9
        slow_after = self.slow_consumers()
        cpu = float(report["cpu_s"])
        return {
            "published": burst,
            "received": received,
            "lost": burst - received,
            "msgs_per_s": round((received - 1) / seconds, 1) if seconds > 0 else None,
            "cpu_share": round(cpu / seconds, 2) if seconds > 0 else None,
            "msgs_per_cpu_s": round(received / cpu, 1) if cpu > 0 else None,
            "generator_msgs_per_s": round(sent.rate, 1),
            "slow_consumers_server": (
                None if slow_before is None or slow_after is None else slow_after - slow_before
            ),
        }

    async def wait_processed(
        self, service: ServiceProcess, expected: int, limit_s: float = 60.0
    ) -> int:
        deadline = time.monotonic() + limit_s
        processed = service.processed()
        last_change = time.monotonic()
        while processed < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            now_processed = service.processed()
            if now_processed != processed:
                last_change = time.monotonic()
            elif time.monotonic() - last_change > 5.0:
                break  # stuck: the rest is lost
            processed = now_processed
        return processed

    async def settle(self, service: ServiceProcess, generator: LoadGenerator) -> dict[str, Any]:
        processed = await self.wait_processed(service, generator.published_total)
        metrics = service.metrics()
        return {
            "processed_total": processed,
            "published_total": generator.published_total,
            "lost_total": generator.published_total - processed,
            "invalid_total": int(metrics.get("realtime_strategies_messages_invalid_total", 0)),
            "publish_errors_total": int(metrics.get("realtime_strategies_publish_errors_total", 0)),
            "rss_mb": round(rss_mb(service.pid) or 0.0, 1),
        }

    async def run_service(self, symbols: int, topics: Topics) -> FanoutResult:
        args = self.args
        result = FanoutResult(symbols)
        port = free_port()
        env = service_env(topics, self.nats_url, port)
        service = ServiceProcess(env, args.service_cpu, self.workdir / f"service-{symbols}.log")
        started = time.monotonic()
        await asyncio.to_thread(service.start)
        result.service["startup_s"] = round(time.monotonic() - started, 2)
        result.service["rss_mb_ready"] = round(rss_mb(service.pid) or 0.0, 1)
        nc = await nats.connect(self.nats_url, name="bench-generator", pending_size=8 << 20)
        collector_nc = await nats.connect(self.nats_url, name="bench-signal-collector")
        collector = SignalCollector()
        await collector_nc.subscribe(
            f"{env['NATS_PUBLISHER_TOPIC']}.>",
            cb=collector.on_signal,
            pending_msgs_limit=SUB_PENDING_MSGS,
            pending_bytes_limit=SUB_PENDING_BYTES,
        )
        await collector_nc.flush()
        generator = LoadGenerator(nc, env["NATS_CONSUMER_TOPIC"], self.templates, symbols)
        try:
            # warm-up: every symbol seen, caches filled
            await generator.fixed_rate(args.latency_rate, args.warmup_seconds, record=False)
            await self.settle(service, generator)
            collector.take()
            # 1. the shipped configuration (30 s cooldowns): throughput, then hold 90 % of it
            full = await self.full_speed_phase(service, generator, collector, topics, "default")
            result.phases["full_speed"] = full
            sustain_rate = round(args.sustain_fraction * (full.get("msgs_per_s") or 0.0), -2)
            if sustain_rate > 0 and args.sustain_seconds > 0:
                result.phases["sustained"] = await self.fixed_phase(
                    service, generator, collector, sustain_rate, args.sustain_seconds
                )
            # 2. cooldowns 0 through the admin API: a signal for about a third of the messages
            await asyncio.to_thread(service.set_cooldowns, 0)
            for rate, seconds in (
                (args.latency_rate, args.latency_seconds),
                (args.high_rate, args.high_seconds),
            ):
                result.phases[f"fixed_{int(rate)}"] = await self.fixed_phase(
                    service, generator, collector, rate, seconds
                )
            result.phases["full_speed_signal_heavy"] = await self.full_speed_phase(
                service, generator, collector, topics, "heavy"
            )
            result.service["slow_consumer_log_lines"] = service.slow_consumer_log_count()
            result.service["rss_mb_end"] = round(rss_mb(service.pid) or 0.0, 1)
            result.service["disconnects_in_log"] = service.log_count('"nats_disconnected"')
            result.service["signals_received"] = collector.total
        finally:
            await nc.close()
            await collector_nc.close()
            result.service["exit_code"] = await asyncio.to_thread(service.stop)
        return result

    async def fixed_phase(
        self,
        service: ServiceProcess,
        generator: LoadGenerator,
        collector: SignalCollector,
        rate: float,
        seconds: float,
    ) -> dict[str, Any]:
        """``rate`` msg/s for ``seconds``: latency of every signal, loss, CPU share."""
        slow_before = self.slow_consumers()
        generator.sent_at.clear()
        cpu_before = sched_seconds(service.pid)
        counts = await generator.fixed_rate(rate, seconds, record=True)
        settled = await self.settle(service, generator)
        cpu_after = sched_seconds(service.pid)
        wall = (time.time_ns() - counts.started_ns) / 1e9
        await asyncio.sleep(0.2)  # the last signals on their way
        received = collector.take()
        return {
            "target_msgs_per_s": rate,
            **phase_figures(counts, received, generator.sent_at, cpu_before, cpu_after, wall),
            "slow_consumers_server": self.delta(slow_before, self.slow_consumers()),
            **settled,
        }

    async def full_speed_phase(
        self,
        service: ServiceProcess,
        generator: LoadGenerator,
        collector: SignalCollector,
        topics: Topics,
        label: str,
    ) -> dict[str, Any]:
        """A burst at full speed between two marker snapshots; rate from marker to marker."""
        burst = self.args.burst
        slow_before = self.slow_consumers()
        run = topics.run_id.upper()
        start_marker = f"MARK{run}{label.upper()}A"
        end_marker = f"MARK{run}{label.upper()}Z"
        await generator.publish_marker(start_marker)
        first = await collector.wait_marker(start_marker, 30)
        cpu_before, wait_before = sched_seconds(service.pid)
        # py-spy of the service during the full-speed phase (--profile DIR)
        profiler = await start_py_spy(
            self.args.profile, service.pid, f"service-{generator.symbols}-{label}"
        )
        watching = asyncio.Event()
        watcher = asyncio.create_task(self.watch_server_backlog(service, watching))
        counts = await generator.full_speed(burst)
        await generator.publish_marker(end_marker)
        last = await collector.wait_marker(end_marker, 120)
        cpu_after, wait_after = sched_seconds(service.pid)
        cpu = cpu_after - cpu_before
        watching.set()
        server_backlog = await watcher
        await stop_py_spy(profiler)
        settled = await self.settle(service, generator)
        collector.take()
        seconds = None if first is None or last is None else (last - first) / 1e9
        return {
            "published": counts.published,
            "generator_msgs_per_s": round(counts.rate, 1),
            "msgs_per_s": round((burst + 1) / seconds, 1) if seconds else None,
            "service_cpu_share": round(cpu / seconds, 2) if seconds else None,
            "service_cpu_wait_share": (
                round((wait_after - wait_before) / seconds, 2) if seconds else None
            ),
            "msgs_per_cpu_s": round((burst + 1) / cpu, 1) if cpu > 0 else None,
            "markers_seen": first is not None and last is not None,
            "server_pending_bytes_max": server_backlog,
            "slow_consumers_server": self.delta(slow_before, self.slow_consumers()),
            **settled,
        }

    async def watch_server_backlog(
        self, service: ServiceProcess, stop: asyncio.Event
    ) -> int | None:
        """Largest backlog the NATS server held for the service's connection, sampled every
        0.1 s (the server cuts a client off as a slow consumer past its max_pending, 64 MB
        by default)."""
        if self.server is None:
            return None
        name = service.env["NATS_CONSUMER_NAME"]
        largest: int | None = None
        while not stop.is_set():
            pending = await asyncio.to_thread(self.server.pending_bytes, name)
            if pending is not None:
                largest = max(largest or 0, pending)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)
        return largest

    @staticmethod
    def delta(before: int | None, after: int | None) -> int | None:
        return None if before is None or after is None else after - before

    async def run(self) -> dict[str, Any]:
        os.sched_setaffinity(0, {self.args.generator_cpu})
        if NICE:
            os.setpriority(os.PRIO_PROCESS, 0, NICE)
        run_id = uuid.uuid4().hex[:12]
        results: list[dict[str, Any]] = []
        for symbols in self.args.symbols:
            topics = Topics(f"{run_id}s{symbols}", root="bench")
            print(f"[{symbols} symbols] baseline subscriber ...", file=sys.stderr, flush=True)
            baseline = await self.run_baseline(symbols, topics)
            print(f"[{symbols} symbols] service ...", file=sys.stderr, flush=True)
            fanout = await self.run_service(symbols, topics)
            fanout.baseline = baseline
            results.append(asdict(fanout))
        return {"run_id": run_id, "fanouts": results}


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return round(numerator / denominator, 3) if numerator and denominator else None


def summarize(fanouts: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for fanout in fanouts:
        full = fanout["phases"].get("full_speed", {})
        base = fanout["baseline"]
        service_rate = full.get("msgs_per_s")
        ratio = _ratio(service_rate, base.get("msgs_per_s"))
        ratio_cpu = _ratio(full.get("msgs_per_cpu_s"), base.get("msgs_per_cpu_s"))
        latency = fanout["phases"].get(f"fixed_{int(args.latency_rate)}", {}).get("latency", {})
        p99 = latency.get("p99_ms")
        lossless = base.get("lost") == 0 and all(
            phase.get("lost_total", 1) == 0 and not phase.get("slow_consumers_server")
            for phase in fanout["phases"].values()
        )
        summary[str(fanout["symbols"])] = {
            "service_msgs_per_s": service_rate,
            "baseline_msgs_per_s": base.get("msgs_per_s"),
            "ratio": ratio,
            "service_msgs_per_cpu_s": full.get("msgs_per_cpu_s"),
            "baseline_msgs_per_cpu_s": base.get("msgs_per_cpu_s"),
            "ratio_cpu": ratio_cpu,
            "zero_loss": lossless,
            "p99_ms_at_latency_rate": p99,
            "targets": {
                "msgs_per_s>=20000": bool(service_rate and service_rate >= TARGET_MSGS_PER_S),
                "ratio>=0.4": bool(ratio and ratio >= TARGET_RATIO),
                "p99<=5ms": p99 is not None and p99 <= TARGET_P99_MS,
                "zero_loss": lossless,
            },
        }
    return summary


def _mb(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 1e6:.1f} MB"


def _n(value: object) -> str:
    return "n/a" if value is None else f"{value:,}"


def print_report(document: dict[str, Any]) -> None:
    host, config = document["host"], document["config"]
    print(f"\nService over NATS - {document['date']} - commit {document['commit']}")
    print(
        f"host: {host['cpus']} CPUs ({host['cpu_model']}), load average at start "
        f"{host['loadavg_start']}, at end {host['loadavg_end']}; service on CPU "
        f"{config['service_cpu']}, generator on CPU {config['generator_cpu']}, "
        f"nice {config['nice']}"
    )
    for fanout in document["fanouts"]:
        symbols = fanout["symbols"]
        base = fanout["baseline"]
        print(f"\n== {symbols} symbols ==")
        print(
            f"  baseline nats-py subscriber: {_n(base['msgs_per_s'])} msg/s, "
            f"{_n(base['msgs_per_cpu_s'])} msg per CPU-s (lost {base['lost']}, "
            f"generator {_n(base['generator_msgs_per_s'])} msg/s)"
        )
        for name, phase in fanout["phases"].items():
            line = f"  {name:>11}: {phase['published']:,} msgs"
            if "latency" in phase:
                lat = phase["latency"]
                line += (
                    f" at {_n(phase['achieved_msgs_per_s'])} msg/s, service CPU "
                    f"{phase['service_cpu_share']} (waiting for CPU "
                    f"{phase['service_cpu_wait_share']}); publish->signal p50 {lat['p50_ms']} ms, "
                    f"p99 {lat['p99_ms']} ms, p999 {lat['p999_ms']} ms, max {lat.get('max_ms')} ms "
                    f"(n={lat['count']})"
                )
            else:
                line += (
                    f", service {_n(phase['msgs_per_s'])} msg/s at CPU "
                    f"{phase['service_cpu_share']} (waiting for CPU "
                    f"{phase['service_cpu_wait_share']}) = {_n(phase['msgs_per_cpu_s'])} msg "
                    f"per CPU-s (generator {_n(phase['generator_msgs_per_s'])} msg/s; largest "
                    f"backlog in the server {_mb(phase['server_pending_bytes_max'])})"
                )
            line += (
                f"; lost {phase['lost_total']}, invalid {phase['invalid_total']}, "
                f"slow consumers {phase['slow_consumers_server']}, RSS {phase['rss_mb']} MB"
            )
            print(line)
        summary = document["summary"][str(symbols)]
        print(
            f"  ratio service/baseline: {summary['ratio']} (per CPU-s: {summary['ratio_cpu']}); "
            + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in summary["targets"].items())
        )


async def amain(args: argparse.Namespace) -> int:
    server: NatsServer | None = None
    workdir = Path(tempfile.mkdtemp(prefix="bench-nats-server-"))
    if args.nats_url:
        nats_url = args.nats_url
    else:
        server = NatsServer(workdir)
        server.start()
        nats_url = server.url
    started = time.monotonic()
    try:
        bench = Bench(args, nats_url, server)
        body = await bench.run()
    finally:
        if server is not None:
            server.stop()
    document: dict[str, Any] = {
        **document_head(
            "nats_end_to_end",
            cpu_model=cpu_model(),
            loadavg_start=args.loadavg_start,
            loadavg_end=load_average(),
        ),
        "config": {
            "capture": str(args.capture),
            "symbols": args.symbols,
            "latency_rate": args.latency_rate,
            "latency_seconds": args.latency_seconds,
            "high_rate": args.high_rate,
            "high_seconds": args.high_seconds,
            "burst": args.burst,
            "sustain_fraction": args.sustain_fraction,
            "sustain_seconds": args.sustain_seconds,
            "nats": args.nats_url or "private nats-server",
            "service_cpu": args.service_cpu,
            "generator_cpu": args.generator_cpu,
            "nice": args.nice,
        },
        "duration_s": round(time.monotonic() - started, 1),
        **body,
    }
    document["summary"] = summarize(document["fanouts"], args)
    path = write_document(args.out, "nats_end_to_end", document)
    print_report(document)
    print(f"\nwrote {path} ({document['duration_s']} s)")
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command")
    child = sub.add_parser("baseline-subscriber", help=argparse.SUPPRESS)
    child.add_argument("--nats-url", required=True)
    child.add_argument("--subject", required=True)
    child.add_argument("--expected", type=int, required=True)
    child.add_argument("--idle", type=float, default=5.0)
    parser.add_argument("--capture", type=Path, default=DEFAULT_CAPTURE)
    parser.add_argument("--nats-url", default="", help="use this server (default: a private one)")
    parser.add_argument(
        "--symbols", type=lambda s: [int(x) for x in s.split(",")], default=[50, 500]
    )
    parser.add_argument("--latency-rate", type=float, default=2_000.0)
    parser.add_argument("--latency-seconds", type=float, default=15.0)
    parser.add_argument("--high-rate", type=float, default=20_000.0)
    parser.add_argument("--high-seconds", type=float, default=10.0)
    parser.add_argument("--warmup-seconds", type=float, default=2.0)
    parser.add_argument("--burst", type=int, default=100_000, help="full-speed message count")
    parser.add_argument(
        "--sustain-fraction",
        type=float,
        default=0.9,
        help="then hold this fraction of the full-speed rate (if above --high-rate)",
    )
    parser.add_argument("--sustain-seconds", type=float, default=10.0)
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness of the service, generator and baseline (e.g. -10 on a shared machine)",
    )
    parser.add_argument("--service-cpu", type=int, default=0)
    parser.add_argument("--generator-cpu", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "out" / "bench")
    parser.add_argument(
        "--profile", type=Path, default=None, help="py-spy the service at full speed into DIR"
    )
    args = parser.parse_args(argv)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    args.loadavg_start = load_average()
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    global NICE
    NICE = args.nice
    if args.command == "baseline-subscriber":
        asyncio.run(baseline_subscriber(args.nats_url, args.subject, args.expected, args.idle))
        return 0
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
