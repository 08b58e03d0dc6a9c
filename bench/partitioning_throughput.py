"""Partitioned scaling on this machine: router msg/s, worker msg/s, projected capacity.

Run (NATS with JetStream on 127.0.0.1:4222, ``make services``)::

    .venv/bin/python bench/partitioning_throughput.py [--symbols 50] [--lines N]

What it measures, each role as a real process (``realtime-strategies route`` / ``serve``):

1. **router**: the bundled capture fanned out to ``--symbols`` symbols is published at full
   speed on the raw subject; one router process routes it into the market-data stream with
   JetStream acks (the production setting). Router msg/s = messages / (first → last ack).
   The publisher's own rate is printed too: a router that keeps up with the publisher is
   reported as "≥".
2. **worker**: a fresh worker process (``WORKER_COUNT=1``: every partition) replays that
   stream — the takeover path, which is the live path minus publishing: decode, six
   strategies, metrics book. Worker msg/s = replayed messages / replay time (from reading the
   stream's boundary to the last replayed message processed), from ``/api/v1/partitions``.
   A worker owning one third of the partitions (``WORKER_COUNT=3``) is measured the same way.
3. **baselines**: a do-nothing nats-py ordered consumer reading the same stream (what the
   client library alone can deliver to one Python process), and the worker's decode and
   process work in this process without NATS (where the rest of its time goes).

4. **sharded routers**: shard 0 of 2 and of 4 (``ROUTER_SHARDS``): it receives the whole input
   and publishes its share; its input msg/s is the capacity of that many sharded routers.

Then a projected capacity table: with R routers and W workers (each on its own core),
``capacity = min(router capacity, W-worker bound)``. The W-worker bound is the worker rate
divided by the largest share of the traffic any one worker gets (partition skew of this
symbol set with P = 16). Router capacity: one router as measured; sharded (order-keeping)
routers as measured for 2 and 4 and from a two-term model fitted on the measurements beyond
(every router receives everything and publishes its share); a queue group of R routers
``R × router`` (linear, but reordering — docs/adr/0010-symbol-partitioning.md). The NATS
server is assumed not to be the bottleneck.

Nothing is asserted: this is a benchmark. Figures depend on the machine and on its load
(printed with them); on a shared 2-core machine, router, worker, publisher and nats-server
compete for the same cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nats
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `bench` importable
    sys.path.insert(0, str(ROOT))

from application.partitioning import owned_partitions, partition_of  # noqa: E402
from bench.common import free_port, stop_process  # noqa: E402
from bench.fanout import SYMBOLS_50, capture_lines, fan_out  # noqa: E402

BIN = Path(sys.executable).parent / "realtime-strategies"
PARTITIONS = 16


def fetch(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/ready", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


class Role:
    def __init__(self, args: Sequence[str], env: dict[str, str], log: Path) -> None:
        self.port = int(env["FASTAPI_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(BIN), *args], env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL
            )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{self.url} did not become ready")
            time.sleep(0.1)

    def stop(self) -> None:
        stop_process(self.process)


def environment(run: str, nats_url: str, **extra: object) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV")}
    env.update(
        {
            "NATS_URL": nats_url,
            "NATS_CONSUMER_TOPIC": f"b{run}.raw",
            "NATS_DOMINANCE_TOPIC": f"b{run}.dominance",
            "NATS_QUOTES_TOPIC": f"b{run}.quotes",
            "NATS_ONCHAIN_TOPIC": f"b{run}.onchain",
            "NATS_PUBLISHER_TOPIC": f"b{run}.signals",
            "NATS_CONFIG_CHANGE_TOPIC": f"b{run}.config",
            "PARTITION_SUBJECT_PREFIX": f"b{run}.md",
            "PARTITION_STREAM": f"BENCH_MD_{run}",
            "PARTITION_COUNT": str(PARTITIONS),
            "ROUTER_QUEUE_GROUP": f"b{run}",
            "CONFIG_STORE": "memory",
            "TRADING_SYMBOLS": "*",
            "FASTAPI_HOST": "127.0.0.1",
            "FASTAPI_PORT": str(free_port()),
            "LOG_LEVEL": "WARNING",
            "HEARTBEAT_INTERVAL_SECONDS": "60",
        }
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


async def measure_router(
    run: str, nats_url: str, messages: list[bytes], log: Path, shards: int = 0
) -> tuple[float, float]:
    """(input msg/s the router handled, publisher msg/s). Sharded: shard 0 of ``shards``."""
    extra = {"ROUTER_SHARDS": shards, "ROUTER_SHARD_INDEX": 0} if shards else {}
    router = Role(["route"], environment(run, nats_url, **extra), log)
    try:
        router.wait_ready()
        nc = await nats.connect(nats_url)
        started = time.perf_counter()
        for i, raw in enumerate(messages):
            await nc.publish(f"b{run}.raw", raw)
            if i % 5000 == 4999:
                await nc.flush(timeout=30)
        await nc.flush(timeout=30)
        published = time.perf_counter()
        total = len(messages)
        while True:
            try:
                stats = await asyncio.to_thread(fetch, router.url + "/api/v1/router")
            except OSError:  # a loaded machine: ask again
                await asyncio.sleep(0.2)
                continue
            handled = stats["acked"] + stats["other_shards"] + sum(stats["publish_errors"].values())
            if stats["received"] >= total and stats["pending_acks"] == 0 and handled >= total:
                break
            if router.process.poll() is not None:
                raise SystemExit(f"router exited; see {log}")
            await asyncio.sleep(0.05)
        done = time.perf_counter()
        await nc.close()
        if stats["acked"] + stats["other_shards"] != total:
            raise SystemExit(f"router stored {stats['acked']} of {total}: {stats}")
        return total / (done - started), total / (published - started)
    finally:
        router.stop()


async def measure_worker(
    run: str, nats_url: str, total: int, workers: int, log: Path
) -> tuple[float, int]:
    env = environment(run, nats_url, WORKER_COUNT=workers, WORKER_INDEX=0)
    worker = Role(["serve"], env, log)
    try:
        while True:
            try:
                status = await asyncio.to_thread(fetch, worker.url + "/api/v1/partitions")
            except OSError:
                status = None
            if status is not None and status.get("caught_up"):
                break
            if worker.process.poll() is not None:
                raise SystemExit("worker exited; see " + str(log))
            await asyncio.sleep(0.2)
        replay = status["replay"]  # from the stream's boundary read to the last message done
        processed = int(replay["messages"])
        return processed / float(replay["seconds"]), processed
    finally:
        worker.stop()


async def measure_baseline(run: str, nats_url: str, total: int) -> float:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    got = 0
    done = asyncio.Event()

    async def count(msg: Any) -> None:
        nonlocal got
        got += 1
        if got >= total:
            done.set()

    started = time.perf_counter()
    sub = await js.subscribe(
        f"b{run}.md.>",
        stream=f"BENCH_MD_{run}",
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
        config=ConsumerConfig(),
        cb=count,
        pending_msgs_limit=2_000_000,
        pending_bytes_limit=2 << 30,
    )
    await asyncio.wait_for(done.wait(), 600)
    elapsed = time.perf_counter() - started
    await sub.unsubscribe()
    await nc.close()
    return total / elapsed


def measure_in_process(messages: list[bytes]) -> float:
    """The worker's per-message work without NATS: the composition root's decoder and
    engine (Prometheus observer on, as in the service), in this process."""
    from entrypoints.container import build_container
    from entrypoints.settings import Settings

    container = build_container(Settings(config_store="memory", trading_symbols="*"))
    asyncio.run(container.config_cache().refresh())
    decode = container.decoder().decode_envelope
    handle = container.engine().process
    started = time.perf_counter()
    for raw in messages:
        decoded = decode(raw)
        event = getattr(decoded, "event", None)
        if event is not None:
            handle(event)
    return len(messages) / (time.perf_counter() - started)


async def delete_stream(nats_url: str, name: str) -> None:
    nc = await nats.connect(nats_url)
    with contextlib.suppress(NotFoundError):
        await nc.jetstream().delete_stream(name)
    await nc.close()


def worst_share(
    symbols: Sequence[str], workers: int, weights: Counter[str], *, first_only: bool = False
) -> float:
    """The largest fraction of the traffic any one of ``workers`` workers (or router shards:
    the same ``p mod N`` rule) gets; with ``first_only``, the fraction index 0 gets."""
    total = sum(weights[s] for s in symbols)
    loads = []
    for index in range(1 if first_only else workers):
        owned = set(owned_partitions(index, workers, PARTITIONS))
        loads.append(sum(weights[s] for s in symbols if partition_of(s, PARTITIONS) in owned))
    return max(loads) / total


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    parser.add_argument("--symbols", type=int, default=50, help="fan-out (≤ 50)")
    parser.add_argument("--lines", type=int, default=0, help="capture lines (0 = all)")
    parser.add_argument("--log-dir", type=Path, default=Path("out/bench-partitioning"))
    args = parser.parse_args()
    symbols = SYMBOLS_50[: args.symbols]
    lines = capture_lines()
    if args.lines:
        lines = lines[: args.lines]
    messages = list(fan_out(lines, symbols))
    weights = Counter(dict.fromkeys(symbols, 1))  # the fan-out: equal traffic per symbol
    args.log_dir.mkdir(parents=True, exist_ok=True)
    run = uuid.uuid4().hex[:8]
    load_before = os.getloadavg()
    print(
        f"partitioning throughput: {len(messages):,} messages ({len(lines):,} capture lines x "
        f"{len(symbols)} symbols), P={PARTITIONS}; {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load_before[0]:.2f}; Python {platform.python_version()}"
    )
    try:
        router_rate, publish_rate = await measure_router(
            run, args.nats_url, messages, args.log_dir / f"router-{run}.log"
        )
        worker_rate, processed = await measure_worker(
            run, args.nats_url, len(messages), 1, args.log_dir / f"worker1-{run}.log"
        )
        worker3_rate, processed3 = await measure_worker(
            run, args.nats_url, len(messages), 3, args.log_dir / f"worker3-{run}.log"
        )
        baseline = await measure_baseline(run, args.nats_url, len(messages))
        in_process = await asyncio.to_thread(measure_in_process, messages)
        sharded: dict[int, float] = {}
        for shards in (2, 4):
            shard_run = uuid.uuid4().hex[:8]
            try:
                sharded[shards], _ = await measure_router(
                    shard_run,
                    args.nats_url,
                    messages,
                    args.log_dir / f"router-shard0of{shards}-{shard_run}.log",
                    shards=shards,
                )
            finally:
                await delete_stream(args.nats_url, f"BENCH_MD_{shard_run}")
    finally:
        nc = await nats.connect(args.nats_url)
        with contextlib.suppress(NotFoundError):
            await nc.jetstream().delete_stream(f"BENCH_MD_{run}")
        await nc.close()
    keeps_up = router_rate >= 0.95 * publish_rate
    # Sharded routers: per input message a router pays c_recv (receive and find the key) plus
    # c_pub (publish and ack) for the share f it routes: 1/rate = c_recv + f·c_pub, fitted by
    # least squares on the queue-group router (f = 1) and shard 0 of 2 and of 4. The table uses
    # the measured rates where there are some, the model beyond.
    points = [(1.0, 1 / router_rate)] + [
        (worst_share(symbols, n, weights, first_only=True), 1 / rate)
        for n, rate in sorted(sharded.items())
    ]
    mean_f = sum(f for f, _ in points) / len(points)
    mean_t = sum(t for _, t in points) / len(points)
    c_pub = sum((f - mean_f) * (t - mean_t) for f, t in points) / sum(
        (f - mean_f) ** 2 for f, _ in points
    )
    c_recv = max(mean_t - c_pub * mean_f, 0.0)

    def sharded_capacity(routers: int) -> float:
        if routers == 1:
            return router_rate
        if routers in sharded:
            return sharded[routers]
        return 1 / (c_recv + worst_share(symbols, routers, weights) * c_pub)

    print()
    print(f"{'role':<44} {'msg/s':>10}")
    print(
        f"{'router (1 process, JetStream acks)':<44} "
        f"{('≥ ' if keeps_up else '') + f'{router_rate:,.0f}':>10}"
        f"   (publisher {publish_rate:,.0f} msg/s)"
    )
    rows = (
        ("worker, all 16 partitions (1 consumer)", worker_rate, processed),
        ("worker, 1 of 3 (6 partitions, a consumer each)", worker3_rate, processed3),
    )
    for name, rate, count in rows:
        print(f"{name:<44} {rate:>10,.0f}   ({count:,} messages)")
    print(f"{'do-nothing nats-py ordered consumer':<44} {baseline:>10,.0f}")
    for shards, rate in sorted(sharded.items()):
        share0 = worst_share(symbols, shards, weights, first_only=True)
        model = 1 / (c_recv + share0 * c_pub)
        print(
            f"{f'router, shard 0 of {shards} (input msg/s)':<44} {rate:>10,.0f}   "
            f"(routes {share0:.0%}; model {model:,.0f})"
        )
    print(
        f"router model: receive {c_recv * 1e6:.1f} µs + publish {c_pub * 1e6:.1f} µs "
        "per routed message"
    )
    print(f"{'decode + process in-process, no NATS':<44} {in_process:>10,.0f}")
    print(
        f"worker / do-nothing consumer = {worker_rate / baseline:.2f}; "
        f"worker / in-process = {worker_rate / in_process:.2f}"
    )
    print()
    worker_counts = (1, 2, 3, 4, 6, 8, 16)
    print(
        f"projected capacity (msg/s; each process on its own core; {len(symbols)} symbols of "
        "equal traffic on 16 partitions; busiest worker's share in brackets)"
    )
    header = f"{'routers':>8} | " + " | ".join(f"W={w:<2}" + " " * 12 for w in worker_counts)
    print(header)
    print("-" * len(header))
    for mode, routers_list in (("sharded", (1, 2, 4, 8)), ("queue", (2, 4))):
        for routers in routers_list:
            cells = []
            router_capacity = (
                sharded_capacity(routers) if mode == "sharded" else routers * router_rate
            )
            for w in worker_counts:
                share = worst_share(symbols, w, weights)
                capacity = min(router_capacity, worker_rate / share)
                cells.append(f"{capacity:>9,.0f} ({share:4.0%})")
            label = f"{routers} {'shard' if mode == 'sharded' else 'q.g.'}"
            print(f"{label:>8} | " + " | ".join(cells))
    print(
        "routers: `N shard` = N order-keeping sharded routers (ROUTER_SHARDS=N; 1 = one "
        "router); `N q.g.` = N routers in one queue group (faster, but reorders a symbol's "
        "messages: ADR 0010)"
    )
    load_after = os.getloadavg()
    print(f"\nload average after: {load_after[0]:.2f} (other processes share these cores)")


if __name__ == "__main__":
    asyncio.run(main())
