"""`realtime-strategies record --out DIR [--rotate-seconds 3600] [--max-bytes N]`

Subscribes to the market subjects of the environment (``NATS_URL``, ``NATS_CONSUMER_TOPIC``
and the three side topics ``NATS_DOMINANCE_TOPIC``, ``NATS_QUOTES_TOPIC``,
``NATS_ONCHAIN_TOPIC``) and writes every message's exact bytes, with subject and receive time,
to rotating ``DIR/capture-<UTC start>.jsonl.gz`` files that ``backtest`` and ``sweep`` read
directly (a file or the whole folder). The file being written is flushed and fsync'ed every
second, so a crash loses at most the last second; ``--max-bytes`` bounds the folder, the
oldest files deleted first, each deletion logged. SIGTERM/SIGINT drain the subscriptions
and close the file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from pathlib import Path

import structlog
from pydantic import ValidationError

from adapters.files.gzip_capture_writer import RotatingGzipCaptureWriter
from adapters.nats.connection import NatsConnection
from adapters.nats.market_recorder import DEFAULT_RECORDER_GROUP, NatsMarketRecorder
from adapters.wire.capture import BINANCE_INPUT
from adapters.wire.market_inputs import InputKind
from entrypoints.settings import Settings

log = structlog.get_logger("realtime_strategies.record")


def build_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--out", type=Path, required=True, help="folder of the capture files")
    parser.add_argument(
        "--rotate-seconds", type=float, default=3600.0, help="start a new file this often"
    )
    parser.add_argument(
        "--max-bytes", type=int, default=None, help="bound of the folder; oldest files deleted"
    )
    parser.add_argument("--prefix", default="capture", help="file name prefix")
    parser.add_argument(
        "--queue-group",
        default=DEFAULT_RECORDER_GROUP,
        help="NATS queue group of the recorder replicas ('' = none)",
    )
    parser.add_argument("--flush-seconds", type=float, default=1.0, help=argparse.SUPPRESS)
    return parser


def market_subjects(settings: Settings) -> dict[str, str]:
    """Subject → input name of every market subject configured (empty topics are off)."""
    wanted = [
        (settings.nats_consumer_topic, BINANCE_INPUT),
        (settings.nats_dominance_topic, InputKind.DOMINANCE.value),
        (settings.nats_quotes_topic, InputKind.QUOTES.value),
        (settings.nats_onchain_topic, InputKind.ONCHAIN.value),
    ]
    subjects: dict[str, str] = {}
    for topic, input_name in wanted:
        subject = topic.strip()
        if not subject:
            continue
        if subject in subjects:
            raise ValueError(f"subject {subject!r} configured for two inputs")
        subjects[subject] = input_name
    return subjects


async def record(
    settings: Settings,
    writer: RotatingGzipCaptureWriter,
    *,
    queue_group: str = DEFAULT_RECORDER_GROUP,
    flush_seconds: float = 1.0,
    stop: asyncio.Event | None = None,
) -> NatsMarketRecorder:
    """Record until ``stop`` is set (or SIGTERM/SIGINT); returns the recorder (its counters)."""
    stop = stop if stop is not None else asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
    connection = NatsConnection(settings.nats_url, name=f"{settings.nats_consumer_name}-recorder")
    recorder = NatsMarketRecorder(
        connection, market_subjects(settings), writer.write, queue_group=queue_group
    )
    await connection.start()
    await recorder.start()
    log.info("recorder_started", directory=str(writer.directory), subjects=recorder.subjects)
    heartbeat_every = max(1.0, float(settings.heartbeat_interval_seconds))
    next_heartbeat = time.monotonic() + heartbeat_every
    flush_errors = 0
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), flush_seconds)
            try:
                writer.flush()
            except OSError as error:
                flush_errors += 1
                log.error("capture_flush_failed", error=repr(error), failures=flush_errors)
            if time.monotonic() >= next_heartbeat:
                next_heartbeat += heartbeat_every
                log.info(
                    "recorder_heartbeat",
                    nats_connected=connection.is_connected,
                    subscribed=recorder.is_subscribed,
                    recorded=dict(recorder.recorded),
                    bytes_recorded=recorder.bytes_recorded,
                    write_errors=recorder.write_errors,
                    flush_errors=flush_errors,
                    file=str(writer.path) if writer.path else None,
                    files_deleted=writer.files_deleted,
                )
    finally:
        await recorder.drain()
        writer.close()
        await connection.close()
        log.info(
            "recorder_stopped",
            recorded=dict(recorder.recorded),
            write_errors=recorder.write_errors,
            files_opened=writer.files_opened,
            files_deleted=writer.files_deleted,
        )
    return recorder


def main(args: argparse.Namespace) -> int:
    try:
        settings = Settings()
        subjects = market_subjects(settings)
        writer = RotatingGzipCaptureWriter(
            args.out,
            prefix=args.prefix,
            rotate_seconds=args.rotate_seconds,
            max_bytes=args.max_bytes,
        )
    except (ValidationError, ValueError) as error:
        print(f"record: {error}", file=sys.stderr)
        return 2
    if args.flush_seconds <= 0:
        print("record: --flush-seconds must be > 0", file=sys.stderr)
        return 2
    # The service's log format (JSON lines on stderr); imported here, like the service stack.
    from entrypoints.service import configure_logging

    configure_logging(settings.log_level)
    log.info("recorder_configuring", subjects=subjects, out=str(args.out))
    asyncio.run(
        record(settings, writer, queue_group=args.queue_group, flush_seconds=args.flush_seconds)
    )
    return 0
