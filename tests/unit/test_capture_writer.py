"""Rotating gzip capture files: rotation, the one-second crash bound, the size bound."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from adapters.files.gzip_capture_writer import RotatingGzipCaptureWriter
from adapters.memory.replay_feed import _salvage_gzip_lines
from adapters.nats.connection import NatsConnection
from adapters.nats.market_recorder import NatsMarketRecorder
from adapters.wire.capture import decode_record

pytestmark = pytest.mark.unit

HOUR_NS = 3600 * 10**9
T0 = 1_733_515_200 * 10**9  # 2024-12-06T20:00:00Z


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def lines_of(path: Path) -> list[bytes]:
    """The complete lines of a capture file, finished or cut (as the replay feed reads it)."""
    return [line for line in _salvage_gzip_lines(path) if line]


def test_files_rotate_by_time_and_sort_in_time_order(tmp_path: Path) -> None:
    clock = Clock()
    writer = RotatingGzipCaptureWriter(tmp_path, rotate_seconds=3600, clock_ns=clock)
    for i in range(6):
        clock.now = T0 + i * HOUR_NS // 2  # every half hour
        writer.write(b"line %d" % i)
    writer.close()
    files = writer.files()
    assert [p.name for p in files] == [
        "capture-20241206T200000.000000Z.jsonl.gz",
        "capture-20241206T210000.000000Z.jsonl.gz",
        "capture-20241206T220000.000000Z.jsonl.gz",
    ]
    assert [gzip.decompress(p.read_bytes()) for p in files] == [
        b"line 0\nline 1\n",
        b"line 2\nline 3\n",
        b"line 4\nline 5\n",
    ]


def test_a_flushed_file_is_readable_while_it_is_written(tmp_path: Path) -> None:
    writer = RotatingGzipCaptureWriter(tmp_path)
    for i in range(100):
        writer.write(b"message %d" % i)
    writer.flush()
    assert writer.path is not None
    assert lines_of(writer.path) == [b"message %d" % i for i in range(100)]
    writer.write(b"not flushed yet")
    writer.close()
    assert lines_of(writer.path)[-1] == b"not flushed yet"


CRASHING_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from adapters.files.gzip_capture_writer import RotatingGzipCaptureWriter

    writer = RotatingGzipCaptureWriter(Path(sys.argv[1]))
    for i in range(5000):
        writer.write(b"flushed %d" % i)
    writer.flush()
    print("flushed", flush=True)
    for i in range(5000):
        writer.write(b"lost %d" % i)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_a_killed_writer_loses_only_what_came_after_the_last_flush(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CRASHING_WRITER, str(tmp_path)],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    assert b"flushed\n" in done.stdout  # (structlog prints its default lines there too)
    [path] = tmp_path.glob("*.jsonl.gz")
    recovered = lines_of(path)
    assert recovered[:5000] == [b"flushed %d" % i for i in range(5000)]
    assert all(line.startswith(b"lost ") for line in recovered[5000:])


def test_the_size_bound_deletes_the_oldest_files_first_and_logs_each(tmp_path: Path) -> None:
    old = tmp_path / "capture-20200101T000000.000000Z.jsonl.gz"  # an earlier run's file
    old.write_bytes(os.urandom(3000))
    other = tmp_path / "notes.txt"
    other.write_bytes(os.urandom(5000))  # not ours: never counted, never deleted
    clock = Clock()
    writer = RotatingGzipCaptureWriter(
        tmp_path, rotate_seconds=60, max_bytes=4000, clock_ns=clock, compresslevel=0
    )
    with capture_logs() as logs:
        for i in range(8):
            clock.now = T0 + i * 61 * 10**9  # a new file each time
            writer.write(os.urandom(400).hex().encode())  # ~800 bytes, stored uncompressed
            writer.flush()
        writer.close()
    deleted = [entry for entry in logs if entry["event"] == "capture_file_deleted"]
    files = writer.files()
    assert not old.exists()
    assert other.exists()
    assert deleted[0]["path"] == str(old)
    assert [entry["path"] for entry in deleted] == sorted(entry["path"] for entry in deleted)
    assert writer.files_deleted == len(deleted) >= 4
    assert sum(p.stat().st_size for p in files) <= 4000
    assert files[-1] == writer.path  # the newest file is kept
    assert all(entry["reason"] == "max_bytes" for entry in deleted)


def test_a_large_file_rotates_before_it_breaks_the_bound(tmp_path: Path) -> None:
    writer = RotatingGzipCaptureWriter(tmp_path, max_bytes=40_000, compresslevel=0)
    for _ in range(100):
        writer.write(os.urandom(500).hex().encode())
        writer.flush()
    writer.close()
    assert writer.files_opened > 1
    assert sum(p.stat().st_size for p in writer.files()) <= 40_000


@pytest.mark.parametrize(
    "kwargs", [{"rotate_seconds": 0}, {"max_bytes": 0}, {"prefix": ""}, {"prefix": "a/b"}]
)
def test_bad_writer_settings_are_refused(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"must be|bad file prefix"):
        RotatingGzipCaptureWriter(tmp_path, **kwargs)  # type: ignore[arg-type]


def test_the_recorder_writes_exact_bytes_and_counts_write_errors() -> None:
    written: list[bytes] = []
    recorder = NatsMarketRecorder(
        NatsConnection("nats://127.0.0.1:1"),
        {"market.data": "binance", " ": "quotes"},
        written.append,
        clock_ns=lambda: 42,
    )
    assert recorder.subjects == {"market.data": "binance"}  # an empty subject is off
    recorder.record("market.data", "binance", b'{"x": 1}\xff')
    record = decode_record(written[0])
    assert (record.subject, record.input, record.data, record.received_at_ns) == (
        "market.data",
        "binance",
        b'{"x": 1}\xff',
        42,
    )

    def full_disk(_: bytes) -> None:
        raise OSError(28, "No space left on device")

    failing = NatsMarketRecorder(NatsConnection("nats://127.0.0.1:1"), {"s": "binance"}, full_disk)
    with capture_logs() as logs:
        failing.record("s", "binance", b"{}")
        failing.record("s", "binance", b"{}")
    assert failing.write_errors == 2
    assert sum(failing.recorded.values()) == 0
    assert [e["event"] for e in logs] == ["capture_write_failed"]  # rate-limited
