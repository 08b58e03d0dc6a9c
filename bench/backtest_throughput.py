"""Backtest throughput on one core: decode, process, and both together (SPEC §10).

Run::

    .venv/bin/python bench/backtest_throughput.py [CAPTURE] [--repeat N] [--cpu K]
    .venv/bin/python bench/backtest_throughput.py CAPTURE --profile            # pyinstrument
    .venv/bin/python bench/backtest_throughput.py CAPTURE --profile cprofile   # stdlib

The capture is read and decompressed into memory once (bytes lines, exactly as the replay
feed iterates the file); that I/O is timed and reported separately, never counted in the
throughput. Then, for each repeat, with fresh objects built like ``entrypoints/backtest.py``
(decoder + decode stats, in-memory config service, metrics book, six strategies):

- ``decode``: every line through ``BinanceDecoder.decode`` and ``DecodeStats.record`` (the
  replay feed's per-line work);
- ``process``: the pre-decoded events through ``run_backtest`` (engine walk + strategies +
  metrics book + forward returns);
- ``end-to-end`` (the headline): decoding and ``run_backtest`` in one streaming pass — the
  real backtest minus file I/O, gzip and writing the outputs.

Throughput is messages (input lines) per second. The process is pinned to one CPU with
``os.sched_setaffinity``. The signals of every run are encoded with the service's wire codec
and hashed; the hash must be the same for every phase and repeat, and equals the SHA-256 of
the real backtest's ``signals.jsonl`` (``--expect-signals`` checks that file byte for byte).
No timing is asserted anywhere: this is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import io
import os
import platform
import statistics
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from adapters.memory.replay_feed import LinePosition, decode_lines
from adapters.wire.binance import BinanceDecoder
from adapters.wire.signals import DEFAULT_SOURCE, encode_signal
from adapters.wire.stats import DecodeStats
from application.backtest import BacktestResult, run_backtest
from domain.engine import SignalEngine
from domain.market import MarketEvent
from domain.signal import Signal
from entrypoints.backtest import apply_overrides
from entrypoints.backtest_container import BacktestParts
from entrypoints.lifecycle import settle_garbage_collector

if TYPE_CHECKING:
    from pyinstrument.frame import Frame

DEFAULT_CAPTURE = (
    Path(__file__).resolve().parents[2] / "shared/data/binance-spot-btcusdt-2024-08-08.jsonl.gz"
)
GZIP_MAGIC = b"\x1f\x8b"
PHASES = ("decode", "process", "end-to-end")


# --- the capture, in memory -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Capture:
    path: Path
    lines: list[bytes]
    file_bytes: int
    raw_bytes: int
    read_s: float
    decompress_s: float
    split_s: float


def load_capture(path: Path) -> Capture:
    """The file's lines as the replay feed sees them (bytes, ``\\n`` kept), and I/O times."""
    t0 = time.perf_counter()
    data = path.read_bytes()
    t1 = time.perf_counter()
    # Gzip is recognised by its magic bytes, like the replay feed; wbits=31: gzip container.
    raw = zlib.decompress(data, wbits=31) if data[:2] == GZIP_MAGIC else data
    t2 = time.perf_counter()
    # BytesIO iteration splits exactly like iterating the feed's buffered file (on b"\n").
    lines = io.BytesIO(raw).readlines()
    t3 = time.perf_counter()
    return Capture(path, lines, len(data), len(raw), t1 - t0, t2 - t1, t3 - t2)


# --- one fresh pipeline per run -------------------------------------------------------------


@dataclass(slots=True)
class Pipeline:
    """What ``entrypoints/backtest.py`` builds for one backtest, minus the file feed."""

    decoder: BinanceDecoder
    stats: DecodeStats
    engine: SignalEngine


def build_pipeline(home_venue: str) -> Pipeline:
    parts = BacktestParts(home_venue=home_venue)
    asyncio.run(apply_overrides(parts.config_admin(), ()))  # no overrides
    return Pipeline(parts.binance_decoder(), parts.decode_stats(), parts.engine())


def decoded_events(
    lines: Iterable[bytes], decoder: BinanceDecoder, stats: DecodeStats
) -> Iterator[MarketEvent]:
    """The per-line loop of ``ReplayMarketFeed`` (:func:`decode_lines`) without the file."""
    return decode_lines(lines, decoder, stats, LinePosition())


def signals_digest(signals: Sequence[Signal]) -> str:
    """SHA-256 of the signals as the backtest writes them to ``signals.jsonl``."""
    digest = hashlib.sha256()
    for signal in signals:
        digest.update(encode_signal(signal, DEFAULT_SOURCE))
        digest.update(b"\n")
    return digest.hexdigest()


# --- measuring ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Repeat:
    """One repeat: seconds (wall and CPU) per phase, and what the end-to-end run produced."""

    seconds: dict[str, float]
    cpu_seconds: dict[str, float]
    digests: dict[str, str]
    result: BacktestResult
    stats: DecodeStats


T = TypeVar("T")


def _timed(action: Callable[[], T]) -> tuple[float, float, T]:
    """(wall seconds, CPU seconds of this process, result) of ``action()``.

    CPU time leaves out the time the pinned CPU spent on other processes: on a shared
    machine it is the steadier figure for comparing two versions of the code.
    """
    gc.collect()  # garbage of the previous phase is not charged to this one
    started_cpu = time.process_time()
    started = time.perf_counter()
    value = action()
    wall = time.perf_counter() - started
    return wall, time.process_time() - started_cpu, value


def run_end_to_end(lines: Sequence[bytes], home_venue: str) -> tuple[BacktestResult, DecodeStats]:
    pipeline = build_pipeline(home_venue)
    events = decoded_events(lines, pipeline.decoder, pipeline.stats)
    return run_backtest(events, pipeline.engine), pipeline.stats


def measure_once(lines: Sequence[bytes], home_venue: str) -> Repeat:
    """The three phases, each on fresh objects; process-only reuses decode-only's events."""
    seconds: dict[str, float] = {}
    cpu_seconds: dict[str, float] = {}

    decoding = build_pipeline(home_venue)
    wall, cpu, events = _timed(
        lambda: list(decoded_events(lines, decoding.decoder, decoding.stats))
    )
    seconds["decode"], cpu_seconds["decode"] = wall, cpu

    processing = build_pipeline(home_venue)
    wall, cpu, processed = _timed(lambda: run_backtest(events, processing.engine))
    seconds["process"], cpu_seconds["process"] = wall, cpu

    wall, cpu, (result, stats) = _timed(lambda: run_end_to_end(lines, home_venue))
    seconds["end-to-end"], cpu_seconds["end-to-end"] = wall, cpu

    digests = {
        "process": signals_digest(processed.signals),
        "end-to-end": signals_digest(result.signals),
    }
    return Repeat(seconds, cpu_seconds, digests, result, stats)


# --- reporting ------------------------------------------------------------------------------


def pin_to_cpu(cpu: int | None) -> str:
    """Pin this process to one CPU (default: the last one allowed); describe the outcome."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity on this platform)"
    allowed = sorted(os.sched_getaffinity(0))
    chosen = allowed[-1] if cpu is None else cpu
    os.sched_setaffinity(0, {chosen})
    return f"pinned to cpu {chosen} (of {len(allowed)} allowed: {allowed})"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown cpu"


def machine_description() -> list[str]:
    implementation = platform.python_implementation()
    return [
        f"machine: {platform.platform()}; {cpu_model()}; {os.cpu_count()} cpus",
        f"python:  {implementation} {platform.python_version()} ({sys.executable})",
    ]


def describe_signals(signals: Sequence[Signal]) -> str:
    counts = Counter((s.strategy_id, s.action.value) for s in signals)
    parts = [f"{strategy} {action} {n}" for (strategy, action), n in sorted(counts.items())]
    return f"{len(signals)} ({', '.join(parts) or 'none'})"


def report(capture: Capture, repeats: Sequence[Repeat], pinned: str) -> None:
    messages = len(capture.lines)
    mib = 1024 * 1024
    print(f"capture: {capture.path}")
    print(
        f"  {messages} messages, {capture.file_bytes / mib:.1f} MiB on disk, "
        f"{capture.raw_bytes / mib:.1f} MiB raw; excluded from the figures: read "
        f"{capture.read_s * 1e3:.1f} ms, gunzip {capture.decompress_s * 1e3:.1f} ms, "
        f"split {capture.split_s * 1e3:.1f} ms"
    )
    for line in machine_description():
        print(line)
    print(f"cpu:     {pinned}")
    last = repeats[-1]
    print(
        f"events:  {last.result.events} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(last.result.events_by_type.items()))}); "
        f"skipped {last.stats.skipped_total} {dict(sorted(last.stats.skipped.items()))}"
    )
    print(f"signals: {describe_signals(last.result.signals)}")
    print(f"  sha256 of signals.jsonl: {last.digests['end-to-end']}")
    print()
    print(
        f"{len(repeats)} repeats, fresh pipeline each; msg/s = messages / wall time "
        "(cpu msg/s: / CPU time of the process)"
    )
    print(
        f"{'phase':<12} {'median msg/s':>13} {'min msg/s':>11} {'max msg/s':>11} "
        f"{'µs/msg':>7} {'median cpu msg/s':>17}"
    )
    for phase in PHASES:
        rates = [messages / r.seconds[phase] for r in repeats]
        cpu_rates = [messages / max(r.cpu_seconds[phase], 1e-9) for r in repeats]
        median = statistics.median(rates)
        print(
            f"{phase:<12} {median:>13,.0f} {min(rates):>11,.0f} {max(rates):>11,.0f} "
            f"{1e6 / median:>7.2f} {statistics.median(cpu_rates):>17,.0f}"
        )


def check_digests(repeats: Sequence[Repeat], expect: Path | None) -> list[str]:
    """Every phase and repeat must emit the same signals (and those of ``expect``)."""
    problems = []
    digests = {d for r in repeats for d in r.digests.values()}
    if len(digests) != 1:
        problems.append(f"signals differ between phases or repeats: {sorted(digests)}")
    if expect is not None:
        wanted = hashlib.sha256(expect.read_bytes()).hexdigest()
        if digests != {wanted}:
            problems.append(f"signals differ from {expect} (sha256 {wanted})")
        else:
            print(f"  identical to {expect}")
    return problems


# --- profiling ------------------------------------------------------------------------------


def profile(lines: Sequence[bytes], home_venue: str, tool: str, runs: int, top: int) -> None:
    """Profile ``runs`` end-to-end runs (fresh pipelines) and print the top functions."""
    pipelines = [build_pipeline(home_venue) for _ in range(runs)]

    def work() -> None:
        for pipeline in pipelines:
            events = decoded_events(lines, pipeline.decoder, pipeline.stats)
            run_backtest(events, pipeline.engine)

    print()
    if tool == "cprofile":
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(work)
        stats = pstats.Stats(profiler, stream=sys.stdout).strip_dirs()
        print(f"cProfile, {runs} end-to-end runs, top {top} by own time (cProfile inflates calls):")
        stats.sort_stats(pstats.SortKey.TIME).print_stats(top)
        return
    from pyinstrument import Profiler

    sampler = Profiler(interval=0.0002)
    sampler.start()
    work()
    sampler.stop()
    session = sampler.last_session
    root = session.root_frame() if session is not None else None
    if root is None:
        print("pyinstrument recorded no samples")
        return
    own, inclusive = _time_by_function(root)
    total = root.time
    print(
        f"pyinstrument, {runs} end-to-end runs, {total:.2f} s sampled; top {top} functions by "
        "own time (C functions such as orjson.loads are listed on their own):"
    )
    print(f"{'own %':>6} {'incl %':>7}  function")
    for name, seconds in sorted(own.items(), key=lambda item: -item[1])[:top]:
        print(f"{100 * seconds / total:>6.1f} {100 * inclusive[name] / total:>7.1f}  {name}")


def _time_by_function(root: Frame) -> tuple[dict[str, float], dict[str, float]]:
    """Own and inclusive seconds per function over a pyinstrument call tree.

    Inclusive time counts a function once per stack (recursion is not double counted).
    Synthetic frames (pyinstrument's ``[self]`` leaves) are folded into their parent's own time.
    """
    own: dict[str, float] = {}
    inclusive: dict[str, float] = {}
    stack: list[tuple[Frame, frozenset[str]]] = [(root, frozenset())]
    while stack:
        frame, active = stack.pop()
        qualified = f"{frame.class_name}.{frame.function}" if frame.class_name else frame.function
        name = f"{qualified}  {frame.file_path_short or ''}:{frame.line_no or ''}"
        own[name] = own.get(name, 0.0) + frame.total_self_time
        if name not in active:
            inclusive[name] = inclusive.get(name, 0.0) + frame.time
        inner = active | {name}
        stack.extend((child, inner) for child in frame.children if not child.is_synthetic)
    return own, inclusive


# --- command line ---------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("capture", nargs="?", type=Path, default=DEFAULT_CAPTURE)
    parser.add_argument("--repeat", type=int, default=7, help="fresh runs per phase (default 7)")
    parser.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: last)")
    parser.add_argument("--home-venue", default="binance")
    parser.add_argument(
        "--expect-signals",
        type=Path,
        default=None,
        metavar="SIGNALS_JSONL",
        help="a real backtest's signals.jsonl: fail unless the signals are byte-identical",
    )
    parser.add_argument(
        "--profile",
        nargs="?",
        const="pyinstrument",
        choices=("pyinstrument", "cprofile"),
        default=None,
        help="also profile the end-to-end loop (default tool: pyinstrument)",
    )
    parser.add_argument("--profile-runs", type=int, default=5, help="end-to-end runs profiled")
    parser.add_argument("--top", type=int, default=25, help="functions shown by --profile")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    if not args.capture.is_file():
        parser.error(f"no such file: {args.capture}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    pinned = pin_to_cpu(args.cpu)
    capture = load_capture(args.capture)
    settle_garbage_collector()  # as `realtime-strategies backtest` does before it replays
    repeats = [measure_once(capture.lines, args.home_venue) for _ in range(args.repeat)]
    report(capture, repeats, pinned)
    problems = check_digests(repeats, args.expect_signals)
    if args.profile is not None:
        profile(capture.lines, args.home_venue, args.profile, args.profile_runs, args.top)
    for problem in problems:
        print(f"ERROR: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
