"""Router failover time on this machine (docs/adr/0019-router-failover.md).

Run (NATS with JetStream on 127.0.0.1:4222, ``make services``)::

    .venv/bin/python bench/router_failover.py [--ttl 6] [--rate 2000] [--runs 3]

Per run: two ``realtime-strategies route`` processes of one shard (leader + standby, input
stream, KV lease with ``--ttl``), a publisher sending the fanned-out capture at ``--rate``
msg/s on the raw subject. After a few seconds the leader is stopped — ``SIGKILL`` (a crash)
or ``SIGTERM`` (a rollout: the lease is released) — while the publisher goes on. Measured:

- **takeover**: from the signal to the moment the standby first held the lease and resumed
  (``first_led_at_unix`` of ``/api/v1/router``);
- **routing gap**: the longest pause between consecutive messages stored in the market-data
  stream (server timestamps) — what a worker sees of the failover;
- **exactly once**: messages stored = messages published (duplicates re-sent by the new
  leader are counted, and stored once).

Nothing is asserted: this is a benchmark (the integration tests check loss, duplicates and
order). Figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import nats
from nats.aio.client import Client
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `bench` importable
    sys.path.insert(0, str(ROOT))

from bench.common import git_commit  # noqa: E402
from bench.fanout import SYMBOLS_50, capture_lines, fan_out  # noqa: E402
from bench.partitioning_throughput import Role, environment, fetch  # noqa: E402


async def wait_role(role: Role, wanted: str, within: float = 60.0) -> dict[str, object]:
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(OSError):
            status = await asyncio.to_thread(fetch, role.url + "/api/v1/router")
            if status["role"] == wanted:
                return dict(status)
        if time.monotonic() > deadline:
            raise SystemExit(f"{role.url} never became {wanted}")
        await asyncio.sleep(0.05)


async def store_times(nc: Client, stream: str, subject: str, count: int) -> list[float]:
    js = nc.jetstream()
    sub = await js.subscribe(
        subject,
        stream=stream,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
        config=ConsumerConfig(headers_only=True),
        pending_msgs_limit=1_000_000,
    )
    times = []
    for _ in range(count):
        msg = await sub.next_msg(timeout=30)
        times.append(msg.metadata.timestamp.timestamp())
    await sub.unsubscribe()
    return times


async def one_run(
    nats_url: str, ttl: float, rate: float, how: signal.Signals, log: Path
) -> dict[str, float]:
    run = uuid.uuid4().hex[:8]
    extra = {
        "ROUTER_INPUT_STREAM": f"BENCH_IN_{run}",
        "ROUTER_LEASE_BUCKET": f"bench_lease_{run}",
        "ROUTER_POSITION_BUCKET": f"bench_pos_{run}",
        "ROUTER_LEASE_TTL_SECONDS": ttl,
        "LOG_LEVEL": "INFO",
    }
    messages = list(fan_out(capture_lines()[:1000], SYMBOLS_50[:20]))
    leader = Role(["route"], environment(run, nats_url, **extra), log)
    standby: Role | None = None
    nc = await nats.connect(nats_url)
    try:
        leader.wait_ready()
        await wait_role(leader, "leader")
        standby = Role(["route"], environment(run, nats_url, **extra), log)
        standby.wait_ready()
        await wait_role(standby, "standby")
        interval = 1.0 / rate
        stop_at = len(messages) // 3
        started = time.perf_counter()
        stopped_at = 0.0
        for i, raw in enumerate(messages):
            await nc.publish(f"b{run}.raw", raw)
            if i == stop_at:
                await nc.flush()
                leader.process.send_signal(how)
                stopped_at = time.time()
            delay = started + (i + 1) * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await nc.flush()
        await wait_role(standby, "leader")
        js = nc.jetstream()
        deadline = time.monotonic() + 120
        while (await js.stream_info(f"BENCH_MD_{run}")).state.messages < len(messages):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        stored = (await js.stream_info(f"BENCH_MD_{run}")).state.messages
        times = await store_times(nc, f"BENCH_MD_{run}", f"b{run}.md.>", stored)
        gap = max(b - a for a, b in itertools.pairwise(times))
        final = await asyncio.to_thread(fetch, standby.url + "/api/v1/router")
        return {
            "takeover_s": float(final["first_led_at_unix"]) - stopped_at,
            "gap_s": gap,
            "published": float(len(messages)),
            "stored": float(stored),
            "resent": float(final["duplicates"]),
            "skipped": float(final["skipped_stored"]),
        }
    finally:
        leader.process.kill()
        if standby is not None:
            standby.stop()
        js = nc.jetstream()
        for name in (
            f"BENCH_MD_{run}",
            f"BENCH_IN_{run}",
            f"KV_bench_lease_{run}",
            f"KV_bench_pos_{run}",
        ):
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(name)
        await nc.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nats-url", default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    parser.add_argument("--ttl", type=float, default=6.0, help="ROUTER_LEASE_TTL_SECONDS")
    parser.add_argument("--rate", type=float, default=2000.0, help="input msg/s")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(
        f"commit {git_commit()} · {platform.python_implementation()} "
        f"{platform.python_version()} · load {os.getloadavg()[0]:.1f} · TTL {args.ttl} s · "
        f"{args.rate:.0f} msg/s"
    )
    log = Path(tempfile.mkdtemp(prefix="router-failover-")) / "routers.log"
    for how in (signal.SIGKILL, signal.SIGTERM):
        results = []
        for _ in range(args.runs):
            r = await one_run(args.nats_url, args.ttl, args.rate, how, log)
            results.append(r)
            print(
                f"  {how.name}: takeover {r['takeover_s']:.2f} s, longest routing gap "
                f"{r['gap_s']:.2f} s, stored {r['stored']:.0f}/{r['published']:.0f}, "
                f"{r['skipped']:.0f} found already stored, {r['resent']:.0f} re-sent and "
                "stored once"
            )
        takeovers = [r["takeover_s"] for r in results]
        gaps = [r["gap_s"] for r in results]
        print(
            f"{how.name}: takeover {min(takeovers):.2f}–{max(takeovers):.2f} s "
            f"(median {statistics.median(takeovers):.2f}), routing gap "
            f"{min(gaps):.2f}–{max(gaps):.2f} s; bound TTL + TTL/4 = {args.ttl * 1.25:.2f} s"
        )
    print(f"router logs: {log}")


if __name__ == "__main__":
    asyncio.run(main())
