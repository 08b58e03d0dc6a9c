"""The service's own work per market message, without NATS: CPU time and instruction count.

What the service does for each message it takes from NATS — decode (``decode_envelope`` of the
container's Binance decoder), count, build the ``FeedItem``, then ``SignalEngine.process``
with the Prometheus timing instrument and the metrics book — run in process on the messages
``bench/nats_end_to_end.py`` publishes (the bundled capture fanned out to ``--symbols``
symbols, wall-clock event times), after a warm-up of 2,000 messages. On a shared machine CPU
time varies with the neighbours; the instruction count does not, so compare checkouts with::

    valgrind --tool=callgrind --toggle-collect=starmap_next --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/service_path.py --messages 2000 --once

(only the measured batches run inside ``itertools.starmap``, so callgrind counts exactly
them; divide "Collected" by ``--messages``). Without valgrind it prints the CPU time per
message, the best of ``--repeat`` runs. ``PYTHONPATH=<checkout>`` measures another checkout
with the same virtualenv.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import itertools
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))  # after PYTHONPATH: another checkout's code can be measured

from adapters.nats.market_feed import FeedItem  # noqa: E402
from adapters.wire.stats import Skip  # noqa: E402
from bench.common import DEFAULT_CAPTURE  # noqa: E402
from bench.nats_end_to_end import LoadGenerator, load_templates  # noqa: E402
from entrypoints.container import build_container  # noqa: E402
from entrypoints.lifecycle import settle_garbage_collector  # noqa: E402
from entrypoints.settings import Settings  # noqa: E402

WARMUP = 2_000
BATCH = 500


def messages(count: int, symbols: int) -> list[bytes]:
    generator = LoadGenerator(None, "bench", load_templates(DEFAULT_CAPTURE), symbols)  # type: ignore[arg-type]
    return [generator._next(False) for _ in range(count)]


class Collections:
    """The garbage collector's collections while installed: how many per generation, their
    total and longest wall-clock time (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.total = 0.0
        self.longest = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        spent = time.perf_counter() - self._started
        self.count[info["generation"]] += 1
        self.total += spent
        self.longest = max(self.longest, spent)

    def __str__(self) -> str:
        young, middle, full = self.count
        return (
            f"{young} young, {middle} middle, {full} full collections, "
            f"{self.total * 1e3:.1f} ms, longest {self.longest * 1e3:.2f} ms"
        )


def measure(
    raw: Sequence[bytes], measured: int, collector: str = "service", seen: Collections | None = None
) -> float:
    """CPU seconds of the measured messages (after the warm-up) through a fresh service.

    ``collector="service"`` settles the garbage collector after the warm-up as the service does
    once started (:func:`~entrypoints.lifecycle.settle_garbage_collector`); ``"default"`` keeps
    CPython's defaults (the start-up objects still frozen, as before the tuning)."""
    os.environ.update(CONFIG_STORE="memory", TRADING_SYMBOLS="*", OTEL_EXPORTER="none")
    container = build_container(Settings())
    asyncio.run(container.config_cache().refresh())
    decode = container.decoders()["binance"]
    record = container.decode_stats().record
    process = container.engine().process
    observer = container.prometheus()

    def batch(part: Sequence[bytes]) -> None:
        items: list[FeedItem] = []
        for message in part:
            result = decode(message)
            record(result)
            if result.__class__ is Skip:
                continue
            items.append(
                FeedItem(result.event, result.trace_context, result.message_id, 0, "bench")  # type: ignore[union-attr]
            )
        observer.message_consumed(0.001)
        for item in items:
            process(item.event)

    for start in range(0, WARMUP, BATCH):
        batch(raw[start : start + BATCH])
    parts = [(raw[start : start + BATCH],) for start in range(WARMUP, WARMUP + measured, BATCH)]
    threshold = gc.get_threshold()
    if collector == "service":
        settle_garbage_collector()
    else:
        gc.collect()
        gc.freeze()
    if seen is not None:
        gc.callbacks.append(seen)
    started = time.process_time()
    collections.deque(itertools.starmap(batch, parts), maxlen=0)
    spent = time.process_time() - started
    if seen is not None:
        gc.callbacks.remove(seen)
    gc.unfreeze()
    gc.set_threshold(*threshold)
    return spent


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=20_000, help="measured messages")
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--once", action="store_true", help="one run (under valgrind)")
    parser.add_argument(
        "--collector",
        choices=("service", "default"),
        default="service",
        help="garbage-collector settings: the service's, or CPython's default thresholds",
    )
    parser.add_argument(
        "--collections",
        action="store_true",
        help="also report the garbage collections of each measured run and their pauses",
    )
    args = parser.parse_args(argv)
    raw = messages(WARMUP + args.messages, args.symbols)
    runs = []
    for _ in range(1 if args.once else args.repeat):
        seen = Collections() if args.collections else None
        runs.append(measure(raw, args.messages, args.collector, seen))
        if seen is not None:
            print(f"garbage collector ({args.collector}): {seen}")
    best = min(runs) / args.messages * 1e6
    print(
        f"service path, {args.symbols} symbols: {best:.2f} µs CPU per message (best of "
        f"{len(runs)}; all: {', '.join(f'{r / args.messages * 1e6:.2f}' for r in runs)}); "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
