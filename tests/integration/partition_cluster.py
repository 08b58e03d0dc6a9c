"""A partitioned deployment on the local NATS for the partitioning tests.

:class:`Cluster` owns the processes of one test — ``realtime-strategies route`` and
``realtime-strategies serve`` (partitioned workers, or the single-process service) — started
from the venv with an environment of their own: subjects, streams and queue groups unique to
the run (``t<run id>.*``), the in-memory config store, a free API port each. Logs go to files
under the test's tmp dir; every wait is bounded and reports the log tails of the processes
when it times out. :class:`Workload` is the message sequence the tests publish: the bundled
capture fanned out to 50 symbols, plus dominance, venue quotes and on-chain events between
its two halves.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
import orjson
from nats.js.errors import NotFoundError

from adapters.wire.signals import encode_signal
from adapters.wire.stats import Skip
from bench.fanout import SYMBOLS_50, capture_lines, fan_out
from bench.market_inputs import dominance, exchange_flow, iso, venue_quote, whale_transfer
from domain.live_outcomes import LiveOutcome
from entrypoints.container import build_container
from entrypoints.settings import Settings
from tests.environment import NO_CONFIDENCE_FLOOR
from tests.integration.cli import cli_command
from tests.integration.conftest import free_port
from tests.integration.service_harness import _INHERITED, ChildProcess, wait_until


@dataclass
class Proc(ChildProcess):
    """One ``realtime-strategies`` process, both output streams in one log."""

    args: tuple[str, ...] = ()

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self._spawn(cli_command(*self.args), stdout=log, stderr=log)

    def terminate(self, timeout: float = 30.0) -> None:
        if not self.running:
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def get(self, path: str) -> httpx.Response | None:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(
                f"{self.name} exited with {self.process.returncode}\n{self.tail()}"
            )
        try:
            return httpx.get(self.base_url + path, timeout=10.0)
        except httpx.HTTPError:
            return None

    def json(self, path: str) -> Any:
        response = self.get(path)
        assert response is not None, path
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
        return response.json()

    def ready(self) -> bool:
        response = self.get("/ready")
        return response is not None and response.status_code == 200

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            text = ""
        body = "\n".join(line[:400] for line in text.splitlines()[-lines:])
        return f"--- {self.name} ({'running' if self.running else 'exited'}):\n{body}"


class Cluster:
    """The processes, subjects and streams of one test run."""

    def __init__(self, log_dir: Path, nats_url: str, *, partitions: int = 16) -> None:
        self.run = uuid.uuid4().hex[:10]
        self.log_dir = log_dir
        self.nats_url = nats_url
        self.partitions = partitions
        self.procs: list[Proc] = []
        self.worker_env: dict[str, str] = {}
        """Extra environment of every worker started from now on."""
        base = f"t{self.run}"
        self.raw_topic = f"{base}.binance.websocket.data"
        self.dominance_topic = f"{base}.market.dominance"
        self.quotes_topic = f"{base}.market.quotes"
        self.onchain_topic = f"{base}.onchain.events"
        self.signal_topic = f"{base}.signals.trading"
        self.market_stream = f"MD_{self.run}"
        self.signal_stream = f"SIG_{self.run}"
        self.input_stream = f"IN_{self.run}"
        self.lease_bucket = f"lease_{self.run}"
        self.position_bucket = f"pos_{self.run}"
        self.checkpoint_bucket = f"ckpt_{self.run}"
        self.budget_bucket = f"budget_{self.run}"
        self.prefix = f"{base}.md"

    def env(self, **extra: object) -> dict[str, str]:
        env = {name: os.environ[name] for name in _INHERITED if name in os.environ}
        env.update(
            {
                "NATS_URL": self.nats_url,
                "NATS_CONSUMER_TOPIC": self.raw_topic,
                "NATS_CONSUMER_GROUP": f"g{self.run}",
                "NATS_DOMINANCE_TOPIC": self.dominance_topic,
                "NATS_QUOTES_TOPIC": self.quotes_topic,
                "NATS_ONCHAIN_TOPIC": self.onchain_topic,
                "NATS_PUBLISHER_TOPIC": self.signal_topic,
                "NATS_CONFIG_CHANGE_TOPIC": f"t{self.run}.config.changed",
                "PARTITION_SUBJECT_PREFIX": self.prefix,
                "PARTITION_STREAM": self.market_stream,
                "PARTITION_COUNT": str(self.partitions),
                "SIGNAL_STREAM": self.signal_stream,
                "PARTITION_CHECKPOINT_BUCKET": self.checkpoint_bucket,
                "SIGNAL_BUDGET_BUCKET": self.budget_bucket,
                "ROUTER_QUEUE_GROUP": f"r{self.run}",
                "CONFIG_STORE": "memory",
                "TRADING_SYMBOLS": "*",
                "FASTAPI_HOST": "127.0.0.1",
                "FASTAPI_PORT": str(free_port()),
                "HEARTBEAT_INTERVAL_SECONDS": "10",
                # Recorded events are old by the wall clock. The per-minute cap is off: shared
                # by the workers (ADR 25), it takes its slots in the order they race for them,
                # which the single process's order need not match.
                "MAX_SIGNAL_AGE_SECONDS": "0",
                "MAX_SIGNALS_PER_MINUTE": "0",
                **PARTITION_GOVERNANCE,
                "LOG_LEVEL": "INFO",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update({key.upper(): str(value) for key, value in extra.items()})
        return env

    def add(self, name: str, args: Sequence[str], **extra: object) -> Proc:
        proc = Proc(name, self.env(**extra), self.log_dir, args=tuple(args))
        self.procs.append(proc)
        return proc

    def failover_env(self, ttl: float = 6.0) -> dict[str, str]:
        """Router settings of leader + standby: an input stream, lease and position buckets
        unique to the run, a short lease."""
        return {
            "ROUTER_INPUT_STREAM": self.input_stream,
            "ROUTER_LEASE_BUCKET": self.lease_bucket,
            "ROUTER_POSITION_BUCKET": self.position_bucket,
            "ROUTER_LEASE_TTL_SECONDS": str(ttl),
        }

    def router(self, name: str = "router", **extra: object) -> Proc:
        return self.add(name, ["route"], **extra)

    def worker(self, index: int, count: int, **extra: object) -> Proc:
        return self.add(
            f"worker-{index}-of-{count}",
            ["serve"],
            WORKER_COUNT=count,
            HOSTNAME=f"realtime-strategies-{index}",
            **{**self.worker_env, **extra},
        )

    def single_process(self) -> Proc:
        return self.add("single", ["serve"])

    def describe(self) -> str:
        return "\n".join(proc.tail() for proc in self.procs)

    def wait_ready(self, procs: Sequence[Proc], timeout: float = 90.0) -> None:
        for proc in procs:
            wait_until(proc.ready, timeout, f"{proc.name} /ready", context=self.describe)

    def stop(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(Exception):
                proc.kill()

    async def delete_streams(self) -> None:
        """Delete the run's streams, key-value and object buckets (those that exist)."""
        client = await nats.connect(self.nats_url)
        names = (
            self.market_stream,
            self.signal_stream,
            self.input_stream,
            f"KV_{self.lease_bucket}",
            f"KV_{self.position_bucket}",
            f"OBJ_{self.checkpoint_bucket}",
            f"KV_{self.budget_bucket}",
        )
        for name in names:
            with contextlib.suppress(NotFoundError):
                await client.jetstream().delete_stream(name)
        await client.close()


PARTITION_GOVERNANCE: dict[str, str] = {
    "MAX_SIGNALS_PER_SYMBOL_PER_HOUR": "0",
    **NO_CONFIDENCE_FLOOR,
}
"""Caps and the confidence floor off, so that every routing rule shows in the signals (the
reference computes the same in this process)."""


# --- the workload -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """What the tests publish, in three phases.

    1. the first half of the capture, fanned out to 50 symbols (raw subject);
    2. market-logic inputs at the split's event time: BTC dominance high and rising (buy
       BTCUSDT — lives on BTCUSDT's partition, priced by BTCUSDT's trades), whale transfers of
       BTC and ETH and exchange flows of four alts (on ``<ASSET>USDT``'s partition), and a
       Coinbase quote 1 % above Binance for five symbols (a spread signal on their next depth);
    3. the second half of the capture, fanned out.

    Everything of a phase is routed before the next is published, so each partition holds the
    phases in this order whatever the interleaving of the input subjects.
    """

    phase1: list[bytes]
    phase2: list[tuple[str, bytes]]  # (input kind, payload)
    phase3: list[bytes]

    @property
    def total(self) -> int:
        return len(self.phase1) + len(self.phase2) + len(self.phase3)

    @classmethod
    def build(cls, symbols: Sequence[str] = SYMBOLS_50) -> Workload:
        lines = capture_lines()
        split = len(lines) // 2
        first, second = lines[:split], lines[split:]
        last_ms, ask = 0, 0.0
        for line in reversed(first):
            envelope = orjson.loads(line)
            data = envelope["data"]
            if "asks" in data and not ask:
                ask = float(data["asks"][0][0])
            if "E" in data and not last_ms:
                last_ms = int(data["E"])
            if ask and last_ms:
                break
        t = last_ms + 1
        now = iso(t)
        inputs: list[tuple[str, bytes]] = [
            ("dominance", dominance(71.0, iso(t - 2000))),
            ("dominance", dominance(72.5, now)),
            ("onchain", whale_transfer("BTC", 250, "to_exchange", now)),
            ("onchain", whale_transfer("ETH", 5000, "from_exchange", t)),
            *(("onchain", exchange_flow(a, 900, 100, now)) for a in ("SOL", "XRP", "DOGE", "ADA")),
        ]
        bid = round(ask * 1.01, 2)
        for symbol in ("SOLUSDT", "LINKUSDT", "AVAXUSDT", "NEARUSDT", "KAVAUSDT"):
            quote = venue_quote(symbol[:-4] + "-USDT", bid, round(bid * 1.0002, 2), now)
            inputs.append(("quotes", quote))
        return cls(list(fan_out(first, symbols)), inputs, list(fan_out(second, symbols)))

    def messages(self) -> Iterator[tuple[str, bytes]]:
        """Every message in publication order, with its input kind."""
        for raw in self.phase1:
            yield "binance", raw
        yield from self.phase2
        for raw in self.phase3:
            yield "binance", raw


async def single_process_signals(messages: Iterable[tuple[str, bytes]]) -> list[dict[str, Any]]:
    """The signals of :func:`single_process_run`."""
    return (await single_process_run(messages))[0]


async def single_process_run(
    messages: Iterable[tuple[str, bytes]],
) -> tuple[list[dict[str, Any]], dict[str, LiveOutcome]]:
    """The single-process code path in this process: the composition root's decoders, engine
    (in-memory config, :data:`PARTITION_GOVERNANCE`) and live scorer, ``(kind, raw)``
    messages in order (each event to the scorer first, then its signals, as the run loop
    does); the signals as published and the latest outcome of each. Every message must
    decode."""
    settings = Settings(
        config_store="memory",
        trading_symbols="*",
        max_signals_per_minute=0,
        max_signals_per_symbol_per_hour=0,
    )
    container = build_container(settings)
    container.environ.override(PARTITION_GOVERNANCE)
    await container.config_cache().refresh()
    decoders, engine, scorer = container.decoders(), container.engine(), container.live_scorer()
    signals: list[dict[str, Any]] = []
    outcomes: dict[str, LiveOutcome] = {}
    for kind, raw in messages:
        result = decoders[kind](raw)
        assert not isinstance(result, Skip), result
        updates = scorer.on_event(result.event)
        for emitted in engine.process(result.event):
            signals.append(orjson.loads(encode_signal(emitted, settings.signal_source)))
            updates += scorer.on_signal(emitted)
        outcomes.update((update.signal.signal_id, update) for update in updates)
    return signals, outcomes
