"""Does a what-if preview slow down ingestion? p99 event → signal latency with previews
running back to back versus without (issue 14).

One command (about two minutes)::

    .venv/bin/python bench/preview_latency.py [--nats-url URL] [--rate 1000] [--seconds 20]

``realtime-strategies serve`` (``CONFIG_STORE=memory``, governance off — no rate caps,
hysteresis, reversal cooldown or confidence floor — and cooldowns 0, so about a third of the
messages yield a signal: enough latency samples) is pinned to one core; this process, the
load generator of ``bench/nats_end_to_end.py`` (the bundled capture fanned out to
``--symbols`` symbols, re-stamped with the wall clock), to the other. After a warm-up that
fills the preview window, phases alternate ``--rounds`` times:

* ``without``: ``--rate`` msg/s for ``--seconds``; latency from a message's publish to the
  receipt of a signal it caused;
* ``with_previews``: the same, while a client posts ``POST .../config/{symbol}/preview``
  (``orderbook_skew.buy_threshold`` lowered) back to back — each replays the symbol's
  window (up to ``PREVIEW_MAX_EVENTS`` events) through two engines in the service's worker
  process (nice 19).

It prints per phase the latency percentiles, the previews completed and their duration,
and the service's CPU share and CPU wait (``/proc/<pid>/schedstat``: on a shared machine a
slow phase can be told from a slow service); figures go to
``out/bench/preview_latency-<UTC>.json``. A benchmark, not a test: it exits 0 unless
something broke.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import nats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DEFAULT_CAPTURE, free_port, git_commit, sched_seconds
from bench.nats_end_to_end import (
    LoadGenerator,
    ServiceProcess,
    SignalCollector,
    load_templates,
    phase_figures,
    service_env,
)
from tests.integration.service_harness import Topics

OUT_DIR = Path(__file__).resolve().parents[1] / "out" / "bench"


class PreviewLoop:
    """Posts previews back to back on a thread until stopped; records their durations."""

    def __init__(self, base_url: str, symbol: str) -> None:
        self.url = f"{base_url}/api/v1/strategies/orderbook_skew/config/{symbol}/preview"
        self.body = json.dumps(
            {
                "parameters": {"buy_threshold": 1.1},
                "changed_by": "bench",
                "reason": "preview_latency",
            }
        ).encode()
        self.durations_s: list[float] = []
        self.events: list[int] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self.durations_s, self.events, self.errors = [], [], []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.is_set():
            request = urllib.request.Request(
                self.url,
                data=self.body,
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    body = json.loads(response.read())
                self.durations_s.append(time.perf_counter() - started)
                self.events.append(int(body["data"]["window"]["events"]))
            except (urllib.error.URLError, OSError, ValueError, KeyError) as error:
                self.errors.append(repr(error))
                time.sleep(0.2)


async def phase(
    service: ServiceProcess,
    generator: LoadGenerator,
    collector: SignalCollector,
    rate: float,
    seconds: float,
    previews: PreviewLoop | None,
) -> dict[str, Any]:
    generator.sent_at.clear()
    collector.take()
    cpu_before = sched_seconds(service.pid)
    if previews is not None:
        previews.start()
    counts = await generator.fixed_rate(rate, seconds, record=True)
    if previews is not None:
        previews.stop()
    await asyncio.sleep(0.5)  # the last signals on their way
    cpu_after = sched_seconds(service.pid)
    wall = (time.time_ns() - counts.started_ns) / 1e9
    result = phase_figures(counts, collector.take(), generator.sent_at, cpu_before, cpu_after, wall)
    if previews is not None:
        result["previews"] = {
            "completed": len(previews.durations_s),
            "errors": len(previews.errors),
            "first_error": previews.errors[0] if previews.errors else None,
            "events_per_preview": max(previews.events) if previews.events else None,
            "duration_s_median": (
                round(statistics.median(previews.durations_s), 3) if previews.durations_s else None
            ),
            "duration_s_max": round(max(previews.durations_s), 3) if previews.durations_s else None,
        }
    return result


async def amain(args: argparse.Namespace) -> int:
    os.sched_setaffinity(0, {args.generator_cpu})
    topics = Topics(uuid.uuid4().hex[:12], root="bench")
    port = free_port()
    env = service_env(topics, args.nats_url, port)
    env.update(
        {
            "PREVIEW_WINDOW_SECONDS": str(args.window_seconds),
            "PREVIEW_MAX_EVENTS": str(args.max_events),
            "PREVIEW_TIMEOUT_SECONDS": "60",
        }
    )
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-preview-{topics.run_id}"
    workdir.mkdir(parents=True, exist_ok=True)
    service = ServiceProcess(env, args.service_cpu, workdir / "service.log")
    await asyncio.to_thread(service.start)
    nc = await nats.connect(args.nats_url, name="bench-preview-generator", pending_size=8 << 20)
    collector_nc = await nats.connect(args.nats_url, name="bench-preview-collector")
    collector = SignalCollector()
    await collector_nc.subscribe(f"{env['NATS_PUBLISHER_TOPIC']}.>", cb=collector.on_signal)
    await collector_nc.flush()
    templates = load_templates(args.capture)
    generator = LoadGenerator(nc, env["NATS_CONSUMER_TOPIC"], templates, args.symbols)
    previews = PreviewLoop(service.base_url, generator.names[0])
    phases: list[dict[str, Any]] = []
    try:
        await asyncio.to_thread(service.set_cooldowns, 0)
        print(f"warm-up {args.warmup_seconds:g} s ...", file=sys.stderr, flush=True)
        await generator.fixed_rate(args.rate, args.warmup_seconds, record=False)
        for round_ in range(args.rounds):
            for name, loop in (("without", None), ("with_previews", previews)):
                print(f"round {round_ + 1}: {name} ...", file=sys.stderr, flush=True)
                result = await phase(service, generator, collector, args.rate, args.seconds, loop)
                phases.append({"round": round_ + 1, "phase": name, **result})
    finally:
        previews.stop()
        await nc.close()
        await collector_nc.close()
        exit_code = await asyncio.to_thread(service.stop)
    document = {
        "bench": "preview_latency",
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "load_average": os.getloadavg(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "service_exit_code": exit_code,
        "phases": phases,
    }
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = OUT_DIR / f"preview_latency-{stamp}.json"
    target.write_text(json.dumps(document, indent=2))
    for entry in phases:
        latency = entry["latency"]
        extra = ""
        if "previews" in entry:
            p = entry["previews"]
            extra = (
                f"; previews {p['completed']} (median {p['duration_s_median']} s over "
                f"{p['events_per_preview']} events, {p['errors']} errors)"
            )
        print(
            f"round {entry['round']} {entry['phase']:>13}: p50 {latency.get('p50_ms')} ms, "
            f"p99 {latency.get('p99_ms')} ms, n={latency.get('count')}, "
            f"cpu {entry['service_cpu_share']}, cpu wait {entry['service_cpu_wait_share']}"
            f"{extra}"
        )
    print(f"load average {os.getloadavg()}; written to {target}")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capture", type=Path, default=DEFAULT_CAPTURE)
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    parser.add_argument("--symbols", type=int, default=5)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup-seconds", type=float, default=30.0)
    parser.add_argument("--window-seconds", type=float, default=900.0)
    parser.add_argument("--max-events", type=int, default=20_000)
    parser.add_argument("--service-cpu", type=int, default=0)
    parser.add_argument("--generator-cpu", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(amain(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
