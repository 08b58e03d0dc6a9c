"""A market feed that replays a recorded capture (``.jsonl`` or ``.jsonl.gz``).

Each line is one producer message, decoded by the same codec as the live service; bad lines
are counted in :class:`DecodeStats` (the first ones with their line numbers) and skipped. A
gzip file that ends early (truncated download, crashed recorder) ends the pass with one
``truncated_file`` skip instead of an exception. Gzip is recognised by its magic bytes, not
by the file name.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import io
import itertools
import time
import zlib
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final, Protocol

from adapters.wire.stats import DecodeStats, Skip, SkipReason
from domain.market import MarketEvent

GZIP_MAGIC: Final = b"\x1f\x8b"
_READ_BUFFER: Final = 1 << 20
_SALVAGE_CHUNK: Final = 1 << 16


class LineDecoder(Protocol):
    """What the feed needs from a codec (e.g. ``adapters.wire.binance.BinanceDecoder``).

    If the decoder also has a ``reset()`` method (forget per-symbol ordering state), the
    feed calls it before every pass of a looping replay.
    """

    def decode(self, raw: bytes) -> MarketEvent | Skip: ...


class LinePosition:
    """How many lines :func:`decode_lines` has read (blank ones included), kept when the
    reading stops with an error."""

    __slots__ = ("line",)

    def __init__(self, line: int = 0) -> None:
        self.line = line


def decode_lines(
    lines: Iterable[bytes], decoder: LineDecoder, stats: DecodeStats, position: LinePosition
) -> Iterator[MarketEvent]:
    """Decode each line, record it in ``stats`` under its line number (counted on from
    ``position``), yield the events; blank lines are not messages."""
    decode = decoder.decode
    record = stats.record
    line_no = position.line
    try:
        for line in lines:
            line_no += 1
            if len(line) <= 2 and not line.strip():
                continue
            result = decode(line)
            record(result, line_no)
            if result.__class__ is not Skip:
                yield result  # type: ignore[misc]
    finally:
        position.line = line_no


@dataclass(frozen=True, slots=True)
class ReplayItem:
    """One replayed event with the fields the service runtime reads from a feed item."""

    event: MarketEvent
    trace_context: Mapping[str, str] | None = None
    message_id: str | None = None
    received_at_ns: int = 0
    subject: str = "replay"


def _open(path: Path) -> IO[bytes]:
    raw = io.BufferedReader(io.FileIO(path, "r"), _READ_BUFFER)
    try:
        magic = raw.peek(2)[:2]
        if magic == GZIP_MAGIC:
            return io.BufferedReader(gzip.GzipFile(fileobj=raw, mode="rb"), _READ_BUFFER)
    except BaseException:
        raw.close()
        raise
    return raw


def _salvage_gzip_lines(path: Path) -> Iterator[bytes]:
    """The complete lines of a damaged gzip file, up to the damage (slow, robust path).

    Decompresses incrementally (member after member) and stops quietly at the first error
    or at the end of the input; a last line cut by the damage is not returned.
    """
    decompressor = zlib.decompressobj(31)
    pending = b""
    with open(path, "rb") as handle:
        while chunk := handle.read(_SALVAGE_CHUNK):
            while chunk:
                try:
                    data = decompressor.decompress(chunk)
                except zlib.error:
                    return
                if data:
                    parts = data.split(b"\n")
                    parts[0] = pending + parts[0]
                    pending = parts.pop()
                    yield from parts
                if not decompressor.eof:
                    break
                chunk = decompressor.unused_data  # next gzip member, if any
                decompressor = zlib.decompressobj(31)


class ReplayMarketFeed:
    """Replays ``path`` through ``decoder``; implements ``MarketFeed`` (``batches()``).

    - ``iter_events()``: synchronous generator, no pacing — the backtest's fast path.
    - ``batches()``: the ``MarketFeed`` port, async; with ``pace=True`` events are released at
      the pace of their event times (divided by ``speed``; 2.0 = twice as fast), otherwise in
      batches of ``yield_every`` events, yielding to the event loop after each so it never
      starves it.
    - ``loop=True`` replays the file forever. Every pass after the first is shifted in event
      time by ``pass_index * (duration + loop_gap_ms)``, where ``duration`` is the span
      between the smallest and largest event time of the first pass — so event time keeps
      increasing across passes (cooldowns, windows and the decoder's ordering check keep
      working) and consecutive passes are separated by ``loop_gap_ms`` of event time. The
      decoder's ordering state is reset before each pass. A pass that yields no event at all
      stops the loop (nothing to replay).
    - ``drain()`` / ``stop()``: end the iteration at the next event.

    The file is read with blocking I/O on the event loop thread in the async path: the reads
    are buffered (1 MiB) and cheap next to decoding, which is fine for a local replay.
    """

    def __init__(
        self,
        path: str | Path,
        decoder: LineDecoder,
        stats: DecodeStats | None = None,
        *,
        loop: bool = False,
        pace: bool = False,
        speed: float = 1.0,
        loop_gap_ms: int = 1_000,
        yield_every: int = 256,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        if loop_gap_ms < 0:
            raise ValueError(f"loop_gap_ms must be >= 0, got {loop_gap_ms}")
        self.path = Path(path)
        self.decoder = decoder
        self.stats = stats if stats is not None else DecodeStats()
        self.loop = loop
        self.pace = pace
        self.speed = speed
        self.loop_gap_ms = loop_gap_ms
        self.yield_every = max(1, yield_every)
        self.passes = 0
        """Passes over the file started so far."""
        self.lines_read = 0
        self.truncated = False
        """Whether a pass ended on a truncated or corrupt gzip stream."""
        self._stopped = False

    # -- sync -------------------------------------------------------------------------------

    def iter_events(self) -> Iterator[MarketEvent]:
        """Every decoded event of the file (of every pass when looping), in file order."""
        self._stopped = False
        shift = 0
        period: int | None = None
        first: int | None = None
        last: int | None = None
        while True:
            if self.passes:
                reset = getattr(self.decoder, "reset", None)
                if callable(reset):
                    reset()
            self.passes += 1
            count = 0
            for event in self._pass():
                if shift:
                    event = dataclasses.replace(event, event_time_ms=event.event_time_ms + shift)
                elif self.loop:
                    t = event.event_time_ms
                    first = t if first is None else min(first, t)
                    last = t if last is None else max(last, t)
                count += 1
                yield event
                if self._stopped:
                    return
            if not self.loop or count == 0 or self._stopped:
                return
            if period is None:
                span = 0 if first is None or last is None else last - first
                period = max(1, span + self.loop_gap_ms)
            shift += period

    def _pass(self) -> Iterator[MarketEvent]:
        """One pass over the file: decode, count, yield events."""
        position = LinePosition()
        try:
            with _open(self.path) as stream:
                yield from decode_lines(stream, self.decoder, self.stats, position)
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            # The buffered reader lost what it had decompressed past the last line it
            # returned: recover the complete lines up to the damage, then count the damage.
            self.truncated = True
            salvaged = itertools.islice(_salvage_gzip_lines(self.path), position.line, None)
            yield from decode_lines(salvaged, self.decoder, self.stats, position)
            truncated = Skip(SkipReason.TRUNCATED_FILE, f"{self.path.name}: {exc}")
            self.stats.record(truncated, position.line + 1)
        finally:
            self.lines_read += position.line

    # -- async ------------------------------------------------------------------------------

    async def batches(self) -> AsyncIterator[list[ReplayItem]]:
        """Events wrapped as feed items (no trace context: a recording's traces are over),
        ``yield_every`` at a time; when paced, what is due, as soon as it is due."""
        loop = asyncio.get_running_loop()
        start_wall: float | None = None
        start_event = 0
        batch: list[ReplayItem] = []
        size = self.yield_every
        subject = str(self.path)
        for event in self.iter_events():
            if self.pace:
                if start_wall is None:
                    start_wall = loop.time()
                    start_event = event.event_time_ms
                due = start_wall + (event.event_time_ms - start_event) / 1000.0 / self.speed
                delay = due - loop.time()
                if delay > 0:
                    if batch:
                        yield batch
                        batch = []
                    await asyncio.sleep(delay)
            if self._stopped:
                break
            batch.append(ReplayItem(event, received_at_ns=time.time_ns(), subject=subject))
            if len(batch) >= size:
                yield batch
                batch = []
                await asyncio.sleep(0)  # never starve the event loop
        if batch:
            yield batch

    async def drain(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - port signature
        """Stop: the iteration ends at the next event (nothing is buffered to flush)."""
        self.stop()

    def stop(self) -> None:
        self._stopped = True
