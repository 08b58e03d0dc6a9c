"""Run the real service (``realtime-strategies serve``) as a separate process in a test.

:class:`ServiceProcess` starts ``realtime-strategies serve`` (the installed entry point)
with an environment dict only (nothing of the test runner's environment leaks in besides
``PATH``/``HOME``/locale), captures its stderr (the structlog JSON log) and stdout in
files, waits for ``/ready``, talks to its HTTP API and parses its log and ``/metrics``. Every
wait is bounded;
every failure message carries the tail of the service's log. :class:`ServiceHarness` owns
the processes of one test and kills whatever is still running at teardown.

:class:`NatsServerProcess` is a throwaway ``nats-server`` (JetStream on, store in a temp
dir) a test can kill and restart on the same port. :func:`service_env` builds the
environment of one instance: unique NATS subjects under ``test.<run id>.``, a free API port,
the failover config store, a short heartbeat (:func:`memory_service_env`: on the in-memory
store). What the tests send and read over NATS (the bundled capture, skewed depth messages,
a :class:`SignalInbox`) and the counters they read from ``/metrics`` are here too, for every
test module.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

import httpx
import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from prometheus_client.parser import text_string_to_metric_families

from tests.environment import NO_CONFIDENCE_FLOOR
from tests.integration.cli import cli_command
from tests.integration.conftest import NATS_URL, ServerProcess, free_port

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[2]
NATS_SERVER_BIN = Path("/usr/sbin/nats-server")
READY_TIMEOUT_S = 180.0
"""Generous: on a loaded machine the service's start-up (about 1.7 CPU-seconds of imports
before its first log line, then the stores and NATS) can take far longer than its CPU time.
A process that exits fails the wait at once, so the bound costs nothing when it works."""
STOP_TIMEOUT_S = 30.0
CONFIG_REFRESH_S = 60
"""The replicas' cache TTL and periodic config refresh (:func:`service_env`): what a replica
that missed a broadcast would apply at the latest."""
PROPAGATION_DEADLINE_S = CONFIG_REFRESH_S / 2
"""How long a test waits for a change to reach another replica: a liveness deadline, not the
SPEC's target (≤ 1 s, measured by ``bench/config_propagation.py``; the tests print what they
saw). Under the refresh interval, so only the broadcast can have delivered what a test sees."""
HTTP_TIMEOUT_S = 5.0
_PR_SET_PDEATHSIG = 1
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH")


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it when the test process dies (Linux), so that a
    test run killed outright (e.g. pytest-timeout's thread method) leaves no process behind."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


class _Wait(Generic[T]):
    """One bounded wait: :meth:`poll` asks the condition once."""

    def __init__(
        self,
        condition: Callable[[], T | None],
        timeout: float,
        what: str,
        context: Callable[[], str] | None,
    ) -> None:
        self.condition = condition
        self.timeout = timeout
        self.what = what
        self.context = context
        self.deadline = time.monotonic() + timeout

    def poll(self) -> T | None:
        """The condition's answer if truthy, else None (wait and poll again); AssertionError
        once the time is up."""
        last = self.condition()
        if last:
            return last
        if time.monotonic() > self.deadline:
            detail = f"\n{self.context()}" if self.context is not None else ""
            raise AssertionError(
                f"timed out after {self.timeout:.1f} s waiting for {self.what}{detail}"
            )
        return None


def wait_until(
    condition: Callable[[], T | None],
    timeout: float,
    what: str,
    *,
    interval: float = 0.05,
    context: Callable[[], str] | None = None,
) -> T:
    """Poll ``condition`` until it returns something truthy; AssertionError after ``timeout``."""
    wait = _Wait(condition, timeout, what, context)
    last = wait.poll()
    while last is None:
        time.sleep(interval)
        last = wait.poll()
    return last


async def async_wait_until(
    condition: Callable[[], T | None],
    timeout: float,  # noqa: ASYNC109
    what: str,
    *,
    interval: float = 0.05,
    context: Callable[[], str] | None = None,
) -> T:
    """:func:`wait_until` for async tests: sleeps with ``asyncio.sleep`` (``condition`` must be
    quick, e.g. one local HTTP request), so the test's own NATS client keeps running."""
    wait = _Wait(condition, timeout, what, context)
    last = wait.poll()
    while last is None:
        await asyncio.sleep(interval)
        last = wait.poll()
    return last


# --- topics and environment -----------------------------------------------------------------


class _Subject:
    """A subject of the run, ``<root>.<run id>.<name>``, read as an attribute of :class:`Topics`."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, topics: Topics, owner: type[Topics] | None = None) -> str:
        return topics.subject(self.name)


@dataclass(frozen=True, slots=True)
class Topics:
    """NATS subjects of one run, all under ``<root>.<run id>.`` (``test.`` for the tests)."""

    run_id: str
    root: str = "test"

    consumer = _Subject("binance.websocket.data")
    signals = _Subject("signals.trading")  # the prefix: signals on ``<signals>.<strategy_id>``
    config_changed = _Subject("strategies.config.changed")
    dominance = _Subject("market.dominance")
    quotes = _Subject("market.quotes")
    onchain = _Subject("onchain.events")
    dead_letter = _Subject("dead.letter")

    @classmethod
    def unique(cls) -> Topics:
        return cls(uuid.uuid4().hex[:12])

    def subject(self, name: str) -> str:
        return f"{self.root}.{self.run_id}.{name}"

    def consumer_of(self, instance: str) -> str:
        """A consumer subject of its own for one instance (to choose who sees what)."""
        return self.subject(f"{instance}.binance.websocket.data")


def service_env(
    topics: Topics,
    *,
    nats_url: str = NATS_URL,
    mongodb_uri: str = "mongodb://127.0.0.1:1",
    mongodb_database: str = "unused",
    mysql_uri: str = "mysql://unused:unused@127.0.0.1:1/unused",
    admin_token: str | None = None,
    port: int | None = None,
    consumer_topic: str | None = None,
    governed: bool = False,
    **extra: str,
) -> dict[str, str]:
    """The environment of one service instance (``extra``: more variables, upper-cased).

    The config store is the failover one, on the stores given (the ``failover_stores``
    fixture); without them, ``config_store="memory"`` (or ``"sqlite"``) needs none. Without
    ``admin_token``, a new one. Unless ``governed``, :data:`UNGOVERNED` lies under ``extra``:
    the tests written before signal governance count one signal per qualifying message.
    """
    env = {name: os.environ[name] for name in _INHERITED if name in os.environ}
    env.update(
        {
            "NATS_URL": nats_url,
            "NATS_CONSUMER_TOPIC": consumer_topic or topics.consumer,
            "NATS_PUBLISHER_TOPIC": topics.signals,
            "NATS_CONFIG_CHANGE_TOPIC": topics.config_changed,
            "NATS_DOMINANCE_TOPIC": topics.dominance,
            "NATS_QUOTES_TOPIC": topics.quotes,
            "NATS_ONCHAIN_TOPIC": topics.onchain,
            "NATS_DEAD_LETTER_TOPIC": topics.dead_letter,
            "FASTAPI_HOST": "127.0.0.1",
            "FASTAPI_PORT": str(port or free_port()),
            "CONFIG_STORE": "failover",
            "MONGODB_URI": mongodb_uri,
            "MONGODB_DATABASE": mongodb_database,
            "MYSQL_URI": mysql_uri,
            "TRADING_SYMBOLS": "*",
            "ADMIN_API_TOKEN": new_token() if admin_token is None else admin_token,
            "HEARTBEAT_INTERVAL_SECONDS": "1",
            # Recorded and synthetic events are old by the wall clock.
            "MAX_SIGNAL_AGE_SECONDS": "0",
            "CONFIG_CACHE_TTL_SECONDS": str(CONFIG_REFRESH_S),
            "CONFIG_REFRESH_INTERVAL_SECONDS": str(CONFIG_REFRESH_S),
            "SHUTDOWN_GRACE_SECONDS": "20",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if not governed:
        env.update(UNGOVERNED)
    env.update({key.upper(): value for key, value in extra.items()})
    return env


UNGOVERNED: dict[str, str] = {
    "MAX_SIGNALS_PER_SYMBOL_PER_HOUR": "0",
    "MAX_SIGNALS_PER_MINUTE": "0",
    **{
        f"{sid}_HYSTERESIS": "false"
        for sid in ("ORDERBOOK_SKEW", "TRADE_MOMENTUM", "TICKER_VELOCITY")
    },
    **{
        f"{sid}_REVERSAL_COOLDOWN_SECONDS": "0"
        for sid in ("ORDERBOOK_SKEW", "TRADE_MOMENTUM", "TICKER_VELOCITY")
    },
    "ORDERBOOK_SKEW_COOLDOWN_SECONDS": "30",
    "TRADE_MOMENTUM_COOLDOWN_SECONDS": "30",
    "TICKER_VELOCITY_COOLDOWN_SECONDS": "60",
    **NO_CONFIDENCE_FLOOR,
}
"""The governance of the service before issue 9, as far as it still exists: no hysteresis,
no reversal cooldown, no confidence floor, no rate caps, the old cooldowns."""


def memory_service_env(topics: Topics, **extra: str) -> dict[str, str]:
    """The harness environment on the in-memory config store (no MongoDB/MySQL needed), one
    heartbeat an hour; ``extra``: more variables (upper-cased), ``admin_api_token`` included."""
    options: dict[str, Any] = {
        "config_store": "memory",
        "heartbeat_interval_seconds": "3600",
        **extra,
    }
    return service_env(topics, **options)


def new_token() -> str:
    return secrets.token_urlsafe(24)


# --- the service process --------------------------------------------------------------------


def log_time(record: dict[str, Any]) -> float:
    """When the service logged ``record`` (its ``timestamp``), in seconds since the epoch."""
    return datetime.fromisoformat(str(record["timestamp"]).replace("Z", "+00:00")).timestamp()


def parse_log(text: str) -> list[dict[str, Any]]:
    """The JSON log lines of ``text``; any other line becomes ``{"event": None, "raw": line}``."""
    records: list[dict[str, Any]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            records.append({"event": None, "raw": line})
            continue
        records.append(record if isinstance(record, dict) else {"event": None, "raw": line})
    return records


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus exposition → ``{"name{label=value,...}": value}`` (labels sorted)."""
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def metric_sum(samples: Mapping[str, float], name: str) -> float:
    """Sum of every sample of ``name`` (all label values)."""
    return sum(value for key, value in samples.items() if key == name or key.startswith(name + "{"))


@dataclass
class ChildProcess:
    """A ``realtime-strategies`` process a test starts: its environment (``FASTAPI_PORT``
    its API port), its logs under ``log_dir``; SIGKILLed if the test process dies."""

    name: str
    env: dict[str, str]
    log_dir: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    starts: int = field(default=0, init=False)

    @property
    def port(self) -> int:
        return int(self.env["FASTAPI_PORT"])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def _spawn(self, command: Sequence[str], *, stdout: IO[bytes], stderr: IO[bytes]) -> None:
        assert not self.running, f"{self.name} is already running"
        self.process = subprocess.Popen(
            list(command),
            env=self.env,
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            cwd=self.log_dir,
            start_new_session=True,  # a Ctrl-C of the test run is not sent to it too
            preexec_fn=_die_with_parent,
        )
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL if still running (a crash, or teardown; never raises)."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(OSError):
            process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)


@dataclass
class ServiceProcess(ChildProcess):
    """One ``realtime-strategies serve`` process."""

    command: tuple[str, ...] = tuple(cli_command("serve"))

    @property
    def token(self) -> str:
        return self.env["ADMIN_API_TOKEN"]

    @property
    def stderr_path(self) -> Path:
        return self.log_dir / f"{self.name}.stderr.log"

    @property
    def stdout_path(self) -> Path:
        return self.log_dir / f"{self.name}.stdout.log"

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        assert not self.running, f"{self.name} is already running"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.stderr_path.open("ab") as err, self.stdout_path.open("ab") as out:
            self._spawn(self.command, stdout=out, stderr=err)

    def _probe_ready(self) -> dict[str, Any] | None:
        """``/ready``'s body if it answers 200, else None; raises if the process exited."""
        self._assert_alive()
        try:
            response = httpx.get(f"{self.base_url}/ready", timeout=1.0)
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        body: dict[str, Any] = response.json()
        return body

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> dict[str, Any]:
        """Wait until ``/ready`` answers 200; return its body. Fails fast if it exits."""
        return wait_until(
            self._probe_ready, timeout, f"{self.name} /ready", interval=0.1, context=self.describe
        )

    async def wait_ready_async(
        self,
        timeout: float = READY_TIMEOUT_S,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        return await async_wait_until(
            self._probe_ready, timeout, f"{self.name} /ready", interval=0.1, context=self.describe
        )

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def terminate(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM and wait for the exit (SIGKILL after ``timeout``); the return code."""
        process = self.process
        if process is None:
            raise AssertionError(f"{self.name} was never started")
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
            raise AssertionError(
                f"{self.name} did not exit within {timeout} s of SIGTERM (killed)\n"
                f"{self.describe()}"
            ) from None

    def _assert_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(
                f"{self.name} exited with {self.process.returncode}\n{self.describe()}"
            )

    # --- logs -----------------------------------------------------------------------------

    def log_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def logs(self) -> list[dict[str, Any]]:
        return parse_log(self.log_text())

    def events(self, event: str) -> list[dict[str, Any]]:
        return [record for record in self.logs() if record.get("event") == event]

    async def config_applied(
        self,
        version: int,
        what: str,
        *,
        timeout: float = PROPAGATION_DEADLINE_S,  # noqa: ASYNC109
        **fields: Any,
    ) -> dict[str, Any]:
        """The ``config_change_applied`` log record of ``version`` whose ``fields`` match (e.g.
        ``strategy_id``), once this process has logged it; AssertionError after ``timeout``.
        Only a broadcast from another replica logs it (:func:`log_time` says when)."""

        def applied() -> dict[str, Any] | None:
            for record in self.events("config_change_applied"):
                if record.get("version") == version and all(
                    record.get(key) == value for key, value in fields.items()
                ):
                    return record
            return None

        return await async_wait_until(applied, timeout, what, context=self.describe)

    def non_json_lines(self) -> list[str]:
        return [str(r["raw"]) for r in self.logs() if r.get("event") is None and "raw" in r]

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def cpu_seconds(self) -> float | None:
        """CPU time the (running) process has used so far (Linux), else None."""
        if not self.running or self.process is None:
            return None
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def describe(self) -> str:
        state = "running" if self.running else f"exited {self.returncode}"
        tail = self.log_tail()
        if not tail:  # nothing logged yet: still importing, or starved of CPU, or stuck?
            cpu = self.cpu_seconds()
            used = "" if cpu is None else f", {cpu:.2f} CPU-s used"
            tail = f"(empty log{used}; load average {os.getloadavg()[0]:.1f})"
        return (
            f"--- {self.name} ({state}, {self.base_url}); last log lines of "
            f"{self.stderr_path}:\n{tail}"
        )

    # --- HTTP -----------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        admin: bool = False,
        timeout: float = HTTP_TIMEOUT_S,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if admin else {}
        try:
            return httpx.request(
                method,
                f"{self.base_url}{path}",
                json=json_body,
                headers=headers,
                timeout=timeout,
            )
        except httpx.HTTPError as error:
            raise AssertionError(
                f"{method} {path} on {self.name}: {error!r}\n{self.describe()}"
            ) from error

    def get_json(self, path: str, expect: int | None = 200) -> Any:
        response = self.request("GET", path)
        if expect is not None and response.status_code != expect:
            raise AssertionError(
                f"GET {path} on {self.name}: {response.status_code} {response.text}\n"
                f"{self.describe()}"
            )
        return response.json()

    def ready_status(self) -> tuple[int, dict[str, Any]]:
        response = self.request("GET", "/ready")
        return response.status_code, response.json()

    def metrics(self) -> dict[str, float]:
        response = self.request("GET", "/metrics")
        assert response.status_code == 200, f"/metrics: {response.status_code}"
        return parse_metrics(response.text)


class ServiceHarness:
    """The service processes of one test; kills every one still running at :meth:`close`."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.services: list[ServiceProcess] = []

    def start(self, name: str, env: dict[str, str]) -> ServiceProcess:
        """Start a process (not waiting: ``await service.wait_ready_async()``)."""
        service = ServiceProcess(name, env, self.log_dir)
        self.services.append(service)
        service.start()
        return service

    async def start_replicas(
        self, topics: Topics, names: Sequence[str], **options: Any
    ) -> list[ServiceProcess]:
        """Start one process per name on the same :func:`service_env` ``options``, each on a
        consumer subject of its own (:meth:`Topics.consumer_of`); return them once all are
        ready."""
        services = [
            self.start(
                name, service_env(topics, consumer_topic=topics.consumer_of(name), **options)
            )
            for name in names
        ]
        for service in services:
            await service.wait_ready_async()
        return services

    def describe(self) -> str:
        return "\n".join(service.describe() for service in self.services)

    def close(self) -> None:
        for service in self.services:
            service.kill()


# --- over NATS: market data in, signals out -------------------------------------------------


def depth_message(
    symbol: str,
    event_time: datetime,
    ratio: float,
    update_id: int,
    *,
    mid: float = 60_000.0,
    levels: int = 20,
) -> bytes:
    """A spot depth20 message whose top-5 bid volume is ``ratio`` times the ask volume."""
    ask_qty = 1.0
    bid_qty = ask_qty * ratio
    bids = [[f"{mid - 0.05 - 0.1 * i:.2f}", f"{bid_qty:.6f}"] for i in range(levels)]
    asks = [[f"{mid + 0.05 + 0.1 * i:.2f}", f"{ask_qty:.6f}"] for i in range(levels)]
    return orjson.dumps(
        {
            "stream": f"{symbol.lower()}@depth20@100ms",
            "data": {"lastUpdateId": update_id, "bids": bids, "asks": asks},
            "timestamp": event_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "message_id": secrets.token_hex(16),
            "source": "binance-websocket",
            "version": "1.0",
        }
    )


async def publish_all(client: NatsClient, subject: str, lines: list[bytes]) -> None:
    for line in lines:
        await client.publish(subject, line)
    await client.flush()


@dataclass
class ReceivedSignal:
    subject: str
    headers: dict[str, str]
    payload: dict[str, Any]
    received_at: float

    @property
    def signal_id(self) -> str:
        return str(self.payload["signal_id"])


@dataclass
class SignalInbox:
    """Everything published under ``<prefix>.>`` (and, separately, on the bare prefix)."""

    prefix: str
    signals: list[ReceivedSignal] = field(default_factory=list)
    bare: list[Msg] = field(default_factory=list)

    async def on_signal(self, msg: Msg) -> None:
        self.signals.append(
            ReceivedSignal(
                msg.subject, dict(msg.headers or {}), orjson.loads(msg.data), time.time()
            )
        )

    async def on_bare(self, msg: Msg) -> None:
        self.bare.append(msg)

    @property
    def ids(self) -> list[str]:
        return [s.signal_id for s in self.signals]


async def subscribe_signals(client: NatsClient, prefix: str) -> SignalInbox:
    inbox = SignalInbox(prefix)
    await client.subscribe(f"{prefix}.>", cb=inbox.on_signal)
    await client.subscribe(prefix, cb=inbox.on_bare)
    await client.flush()
    return inbox


# --- what the service counted --------------------------------------------------------------


def processed_total(service: ServiceProcess) -> tuple[float, float, float]:
    """(messages processed, messages invalid, signals generated) from ``/metrics``."""
    samples = service.metrics()
    return (
        metric_sum(samples, "realtime_strategies_messages_processed_total"),
        metric_sum(samples, "realtime_strategies_messages_invalid_total"),
        metric_sum(samples, "realtime_strategies_signals_generated_total"),
    )


def reason_total(service: ServiceProcess, name: str, reason: str) -> float:
    """Sum of the samples of counter ``name`` labelled ``reason``."""
    samples = service.metrics()
    return metric_sum({k: v for k, v in samples.items() if f"reason={reason}" in k}, name)


def invalid(service: ServiceProcess, reason: str) -> float:
    """Messages the service rejected for ``reason`` (``future_dated``, ``duplicate``, ...)."""
    return reason_total(service, "realtime_strategies_messages_invalid_total", reason)


def suppressed(service: ServiceProcess, reason: str) -> float:
    """Signals the service held back for ``reason`` (``stale``, ``paused``, ``rate_cap``, ...)."""
    return reason_total(service, "realtime_strategies_signals_suppressed_total", reason)


# --- a throwaway NATS server ------------------------------------------------------------------


def nats_server_command(port: int, *options: str) -> list[str]:
    """The ``nats-server`` command line listening on 127.0.0.1:``port``, with ``options``."""
    return [str(NATS_SERVER_BIN), "-a", "127.0.0.1", "-p", str(port), *options]


class NatsServerProcess(ServerProcess):
    """A private ``nats-server`` (JetStream, store in ``store_dir``): kill and restart it on the
    same port; the JetStream store survives restarts."""

    def __init__(self, store_dir: Path, log_dir: Path, port: int | None = None) -> None:
        super().__init__(log_dir, "nats-server", port)
        self.store_dir = store_dir

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        if not os.access(NATS_SERVER_BIN, os.X_OK):
            raise AssertionError(f"{NATS_SERVER_BIN} missing (run scripts/ensure-services.sh)")
        assert not self.running
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = nats_server_command(self.port, "-js", "-sd", str(self.store_dir))
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        process = self.process

        def up() -> bool:
            if process.poll() is not None:
                raise AssertionError(
                    f"nats-server exited with {process.returncode}; log:\n{self.log_tail()}"
                )
            return port_open(self.port)

        wait_until(up, timeout, f"nats-server on port {self.port}", context=self.log_tail)

    def kill(self) -> None:
        """SIGKILL (the server vanishes without a goodbye) and wait."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.kill()
        process.wait(timeout=10)
