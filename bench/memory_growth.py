"""Memory stays bounded: RSS over a long run and under a flood of new symbols (SPEC §10).

One command (about a minute and a half)::

    .venv/bin/python bench/memory_growth.py [--messages 1000000] [--symbols 500]

Runs the service's processing path in this process — ``BinanceDecoder.decode_envelope`` →
``SignalEngine.process`` (the six strategies, the cooldown gate, ``EffectiveConfigCache.effective``
over the in-memory store, ``PrometheusMetrics`` as the observer, ``MarketMetricsBook``) →
``encode_signal`` for every signal — as ``entrypoints/backtest.py`` and the service wire it,
and reads this process's RSS (``/proc/self/status``) along the way:

1. **steady**: ``--messages`` messages of the bundled capture fanned out to ``--symbols``
   symbols, with the capture's own event times (each pass over the capture shifted past the
   previous one). RSS after the warm-up (``--warmup`` messages) and at the end; the target
   is a growth below 50 MB.
2. **flood, allow-list**: ``--flood`` messages, each for a symbol never seen before, with a
   ``TRADING_SYMBOLS`` allow-list: every one is skipped as ``unknown_symbol``.
3. **flood, every symbol** (``TRADING_SYMBOLS=*``): the same flood accepted: every symbol
   creates state in the decoder, the strategies, the cooldown gate and the metrics book.
   RSS every ``--flood / 10`` messages shows whether the state is bounded (the decoder keeps
   at most 10,000 symbols per map, the metrics book 5,000).

Each scenario runs in a fresh child process so that one's memory does not hide another's.
Prints the figures and writes ``out/bench/memory_growth-<UTC>.json``. A benchmark, not a
test: exits 0 unless something broke.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parents[1]
if str(REPO) not in sys.path:  # `python bench/memory_growth.py` puts bench/ first, not the repo
    sys.path.insert(0, str(REPO))

from adapters.memory.clock import FixedClock  # noqa: E402
from adapters.memory.config_repository import InMemoryConfigRepository  # noqa: E402
from adapters.observability.prometheus import PrometheusMetrics  # noqa: E402
from adapters.wire.binance import BinanceDecoder  # noqa: E402
from adapters.wire.signals import encode_signal  # noqa: E402
from adapters.wire.stats import Skip  # noqa: E402
from application.config_cache import EffectiveConfigCache  # noqa: E402
from application.processing import timed  # noqa: E402
from bench.common import DEFAULT_CAPTURE, document_head, rss_mb, write_document  # noqa: E402
from bench.nats_end_to_end import IsoClock, Template, load_templates  # noqa: E402
from domain.engine import SignalEngine  # noqa: E402
from domain.metrics import MarketMetricsBook  # noqa: E402
from domain.strategies.registry import STRATEGY_PARAMS, build_strategies  # noqa: E402

TARGET_GROWTH_MB = 50.0


class Pipeline:
    """The service's processing path, wired like the container does (no I/O)."""

    def __init__(self, symbols: str) -> None:
        clock = FixedClock(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
        self.config = EffectiveConfigCache(STRATEGY_PARAMS, InMemoryConfigRepository(), clock)
        asyncio.run(self.config.refresh())
        self.decoder = BinanceDecoder(symbols=symbols)
        self.book = MarketMetricsBook()
        self.engine = SignalEngine(
            build_strategies("binance"),
            self.config.effective,
            depth_observer=self.book,
            instrument=timed(PrometheusMetrics()),
        )
        self.skipped = 0
        self.signals = 0

    def feed(self, raw: bytes) -> None:
        decoded = self.decoder.decode_envelope(raw)
        if isinstance(decoded, Skip):
            self.skipped += 1
            return
        for signal in self.engine.process(decoded.event):
            encode_signal(signal, "realtime-strategies")
            self.signals += 1


def fanned_out(templates: list[Template], symbols: int) -> Iterator[bytes]:
    """The capture fanned out to ``symbols`` symbols with its own event times; every pass
    over the capture is shifted one capture span (+1 s) later."""
    upper = [f"B{i:03d}USDT".encode() for i in range(symbols)]
    lower = [s.lower() for s in upper]
    span = templates[-1].event_ms - templates[0].event_ms + 1000
    iso = IsoClock()
    k = 0
    while True:
        row, sym = divmod(k, symbols)
        passes, index = divmod(row, len(templates))
        template = templates[index]
        ms = template.event_ms + passes * span
        yield template.pattern % {
            b"sl": lower[sym],
            b"su": upper[sym],
            b"e": b"%d" % ms,
            b"ts": iso.iso(ms),
            b"mid": b"mem-%d" % k,
        }
        k += 1


def flood(templates: list[Template]) -> Iterator[bytes]:
    """Every message for a symbol never seen before (``X0000000USDT``, ``X0000001USDT``...)."""
    iso = IsoClock()
    k = 0
    while True:
        template = templates[k % len(templates)]
        symbol = b"X%07dUSDT" % k
        ms = template.event_ms
        yield template.pattern % {
            b"sl": symbol.lower(),
            b"su": symbol,
            b"e": b"%d" % ms,
            b"ts": iso.iso(ms),
            b"mid": b"flood-%d" % k,
        }
        k += 1


def run_scenario(
    messages: Iterator[bytes], total: int, checkpoints: Sequence[int], symbols: str
) -> dict[str, Any]:
    pipeline = Pipeline(symbols)
    gc.collect()
    series: list[dict[str, float | int]] = [{"messages": 0, "rss_mb": round(rss_mb() or 0.0, 1)}]
    wanted = sorted(set(checkpoints) | {total})
    started = time.perf_counter()
    done = 0
    for checkpoint in wanted:
        feed = pipeline.feed
        for _ in range(checkpoint - done):
            feed(next(messages))
        done = checkpoint
        series.append(
            {
                "messages": done,
                "rss_mb": round(rss_mb() or 0.0, 1),
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
    gc.collect()
    engine = pipeline.engine
    state: dict[str, int] = {
        "decoder_valid_symbols": len(pipeline.decoder._valid_symbols),
        "metrics_book_symbols": len(pipeline.book),
        "metrics_book_evicted": pipeline.book.evicted_symbols,
        "cooldown_entries": engine.governance.symbols,
    }
    for strategy in engine.strategies:
        windows = getattr(strategy, "_windows", None)
        if windows is not None:
            state[f"{strategy.strategy_id}_symbols"] = len(windows)
    return {
        "symbols_setting": symbols,
        "messages": total,
        "skipped": pipeline.skipped,
        "signals": pipeline.signals,
        "msgs_per_s": round(total / (time.perf_counter() - started), 1),
        "rss_mb_after_gc": round(rss_mb() or 0.0, 1),
        "series": series,
        "state_sizes": state,
    }


def child(args: argparse.Namespace) -> dict[str, Any]:
    templates = load_templates(args.capture)
    if args.scenario == "steady":
        step = max(1, args.messages // 10)
        checkpoints = sorted({args.warmup, *range(step, args.messages + 1, step)})
        result = run_scenario(fanned_out(templates, args.symbols), args.messages, checkpoints, "*")
        warm = next(p for p in result["series"] if p["messages"] == args.warmup)
        end = result["series"][-1]
        result["fanout_symbols"] = args.symbols
        result["rss_mb_after_warmup"] = warm["rss_mb"]
        result["rss_mb_end"] = end["rss_mb"]
        result["growth_mb"] = round(float(end["rss_mb"]) - float(warm["rss_mb"]), 1)
        return result
    step = max(1, args.flood // 10)
    checkpoints = list(range(step, args.flood + 1, step))
    allow = "*" if args.scenario == "flood-all" else "BTCUSDT,ETHUSDT,BNBUSDT"
    result = run_scenario(flood(templates), args.flood, checkpoints, allow)
    series = result["series"]
    half = series[len(series) // 2]
    result["growth_mb_second_half"] = round(float(series[-1]["rss_mb"]) - float(half["rss_mb"]), 1)
    result["growth_mb_total"] = round(float(series[-1]["rss_mb"]) - float(series[0]["rss_mb"]), 1)
    return result


def run_child(args: argparse.Namespace, scenario: str) -> dict[str, Any]:
    command = [
        sys.executable,
        str(SCRIPT),
        "--scenario",
        scenario,
        "--capture",
        str(args.capture),
        "--messages",
        str(args.messages),
        "--symbols",
        str(args.symbols),
        "--warmup",
        str(args.warmup),
        "--flood",
        str(args.flood),
    ]
    print(f"{scenario} ...", file=sys.stderr, flush=True)
    out = subprocess.run(command, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def print_report(document: dict[str, Any]) -> None:
    steady = document["steady"]
    print(f"\nMemory - {document['date']} - commit {document['commit']}")

    def series(result: dict[str, Any]) -> str:
        return ", ".join(f"{p['messages'] // 1000}k: {p['rss_mb']}" for p in result["series"])

    verdict = "met" if steady["growth_mb"] < TARGET_GROWTH_MB else "MISSED"
    print(
        f"  steady: {steady['messages']:,} messages over {steady['fanout_symbols']} symbols "
        f"at {steady['msgs_per_s']:,} msg/s, {steady['signals']:,} signals; RSS "
        f"{steady['rss_mb_after_warmup']} MB after {document['config']['warmup']:,} -> "
        f"{steady['rss_mb_end']} MB at the end: growth {steady['growth_mb']} MB "
        f"(target < {TARGET_GROWTH_MB:g} MB: {verdict})"
    )
    print(f"    RSS MB by messages: {series(steady)}")
    print(f"    state: {steady['state_sizes']}")
    for name in ("flood_allow_list", "flood_all_symbols"):
        result = document[name]
        print(
            f"  {name}: {result['messages']:,} new symbols (TRADING_SYMBOLS="
            f"{result['symbols_setting']}), skipped {result['skipped']:,}; RSS growth "
            f"{result['growth_mb_total']} MB in all, {result['growth_mb_second_half']} MB over "
            f"the second half"
        )
        print(f"    RSS MB by messages: {series(result)}")
        print(f"    state: {result['state_sizes']}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="RSS growth of the processing path.")
    parser.add_argument("--capture", type=Path, default=DEFAULT_CAPTURE)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=100_000)
    parser.add_argument("--flood", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=REPO / "out" / "bench")
    parser.add_argument(
        "--scenario", choices=("steady", "flood-allow", "flood-all"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.scenario is not None:
        print(json.dumps(child(args)))
        return 0
    started = time.monotonic()
    runs: dict[str, Callable[[], dict[str, Any]]] = {
        "steady": lambda: run_child(args, "steady"),
        "flood_allow_list": lambda: run_child(args, "flood-allow"),
        "flood_all_symbols": lambda: run_child(args, "flood-all"),
    }
    results = {name: run() for name, run in runs.items()}
    document: dict[str, Any] = {
        **document_head("memory_growth"),
        "config": {
            "capture": str(args.capture),
            "messages": args.messages,
            "symbols": args.symbols,
            "warmup": args.warmup,
            "flood": args.flood,
        },
        "duration_s": round(time.monotonic() - started, 1),
        **results,
        "target_growth_mb": TARGET_GROWTH_MB,
        "target_met": results["steady"]["growth_mb"] < TARGET_GROWTH_MB,
    }
    path = write_document(args.out, "memory_growth", document)
    print_report(document)
    print(f"wrote {path} ({document['duration_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
