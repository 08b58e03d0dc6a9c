"""Partition takeover time with and without state checkpoints, over the real NATS
(docs/adr/0022-partition-state-checkpoints.md).

Run (NATS with JetStream on 127.0.0.1:4222, ``make services``)::

    .venv/bin/python bench/checkpoint_takeover.py [--history 50000 200000] [--runs 2]

Per history size H: one router and one worker owning all 16 partitions (checkpoints every
``--interval`` s); H messages of the capture fanned out to 50 symbols are routed and
processed — the stream's window of history a successor must cover — and checkpointed. Then,
``--runs`` times each, the worker is SIGKILLed and a successor started:

- **with snapshots**: it restores the partitions' snapshots and replays what follows them
  (nothing here: the snapshot is current — in production up to one interval of input);
- **replay only** (``PARTITION_CHECKPOINT_RESTORE=false``): it replays its partitions'
  whole window (``PARTITION_REPLAY_SECONDS``).

Measured: from the successor's start to ``/ready`` (process start, connection, restore or
replay), and the replay/restore times the worker reports. Nothing is asserted: figures
depend on the machine and its load, printed beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nats

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `bench` and `tests` importable
    sys.path.insert(0, str(ROOT))

from bench.fanout import SYMBOLS_50, capture_lines, fan_out  # noqa: E402
from tests.integration.partition_cluster import Cluster, Proc  # noqa: E402
from tests.integration.service_harness import wait_until  # noqa: E402


def _status(worker: Proc) -> dict[str, Any]:
    body: dict[str, Any] = worker.json("/api/v1/partitions")
    return body


def _takeover(cluster: Cluster, index: int, *, restore: bool, interval: float) -> dict[str, Any]:
    worker = cluster.worker(
        0,
        1,
        PARTITION_CHECKPOINT_INTERVAL_SECONDS=interval,
        PARTITION_CHECKPOINT_RESTORE="true" if restore else "false",
    )
    worker.name = f"successor-{index}-{'snapshot' if restore else 'replay'}"
    started = time.monotonic()
    worker.start()
    wait_until(worker.ready, 900, f"{worker.name} ready", interval=0.05)
    ready_s = time.monotonic() - started
    status = _status(worker)
    worker.kill()
    checkpoints = status["checkpoints"] or {}
    return {
        "ready_s": ready_s,
        "replay_s": status["replay"]["seconds"],
        "replayed": status["replay"]["messages"],
        "restore_s": checkpoints.get("restore_seconds"),
        "restored": checkpoints.get("restore_results", {}).get("restored", 0),
    }


async def _publish(cluster: Cluster, lines: list[bytes], count: int) -> None:
    client = await nats.connect(cluster.nats_url)
    for sent, raw in enumerate(fan_out(lines, SYMBOLS_50), 1):
        await client.publish(cluster.raw_topic, raw)
        if sent % 2000 == 0:
            await client.flush(timeout=30)
        if sent >= count:
            break
    await client.flush(timeout=30)
    js = client.jetstream()
    deadline = time.monotonic() + 600
    while (await js.stream_info(cluster.market_stream)).state.last_seq < count:
        if time.monotonic() > deadline:
            raise RuntimeError("routing did not finish")
        await asyncio.sleep(0.5)
    await client.close()


def measure(history: int, runs: int, interval: float, nats_url: str) -> dict[str, Any]:
    lines = capture_lines()
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(Path(tmp), nats_url)
        try:
            router = cluster.router(**cluster.failover_env())
            first = cluster.worker(0, 1, PARTITION_CHECKPOINT_INTERVAL_SECONDS=interval)
            router.start()
            first.start()
            for proc in (router, first):
                wait_until(proc.ready, 120, f"{proc.name} ready")
            asyncio.run(_publish(cluster, lines, history))

            def checkpointed() -> bool:
                status = _status(first)
                written = status["checkpoints"]["last_written_seq"]
                return bool(status["caught_up"]) and all(
                    written.get(p) == s for p, s in status["delivered_seq"].items() if s
                )

            wait_until(checkpointed, 900, "caught up and checkpointed", interval=0.5)
            sizes = _status(first)["checkpoints"]
            first.kill()
            results: dict[str, list[dict[str, Any]]] = {"snapshot": [], "replay": []}
            for i in range(runs):
                for mode in ("snapshot", "replay"):
                    results[mode].append(
                        _takeover(cluster, i, restore=mode == "snapshot", interval=0.0)
                    )
        finally:
            cluster.stop()
            asyncio.run(cluster.delete_streams())
    return {"history": history, "checkpoint": sizes, "results": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--history", type=int, nargs="+", default=[50_000, 200_000])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--nats-url", default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    args = parser.parse_args(argv)
    print(f"# {platform.python_version()} on {platform.machine()}, load {os.getloadavg()}")
    for history in args.history:
        out = measure(history, args.runs, args.interval, args.nats_url)
        ckpt = out["checkpoint"]
        print(
            f"history {history:,} messages: checkpoint {ckpt['last_bytes']:,} bytes "
            f"(capture {ckpt['last_capture_seconds']} s, write {ckpt['last_write_seconds']} s)"
        )
        for mode, runs in out["results"].items():
            ready = [r["ready_s"] for r in runs]
            print(
                f"  {mode:8s}: start→ready {min(ready):.2f}–{max(ready):.2f} s "
                f"(median {statistics.median(ready):.2f}); "
                + "; ".join(
                    f"replayed {r['replayed']:,} in {r['replay_s']} s, "
                    f"restored {r['restored']} partitions in {r['restore_s']} s"
                    for r in runs
                )
            )
    print(f"# load after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
