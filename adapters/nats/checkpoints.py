"""Partition state checkpoints in a JetStream Object Store.

See docs/adr/0022-partition-state-checkpoints.md.

A partitioned worker's feed (:class:`~adapters.nats.partition_feed.JetStreamPartitionFeed`)
calls :meth:`PartitionCheckpoints.restore` once, before it opens its consumers, and
:meth:`PartitionCheckpoints.capture` between two batches when nothing received is left
unprocessed — the state is then exactly the result of the partition's messages up to the
last sequence delivered, which the snapshot records. One object per partition,
``partition-<p>``, replaced at each checkpoint.

Encoding (:func:`encode_snapshot`): ``RSCP`` magic, one byte of codec version, the CRC-32 of
the body, then the body: zlib-compressed MessagePack of the snapshot (floats as IEEE
doubles, so a restored state is bit-for-bit the saved one). The Object Store checks its own
SHA-256 digest on read as well. Whatever cannot be read or restored is counted by
:class:`~application.checkpoints.RestoreResult`, logged, and the partition is replayed
from the stream's horizon instead: a snapshot never stops a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import struct
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import structlog
from nats.js import JetStreamContext
from nats.js.api import ObjectStoreConfig, StorageType
from nats.js.errors import BucketNotFoundError, NotFoundError, ObjectNotFoundError

from adapters.nats.connection import NatsConnection
from adapters.nats.jetstream_streams import open_or_create
from application.checkpoints import (
    FORMAT_VERSION,
    PartitionSnapshot,
    RestoreResult,
    SnapshotRejectedError,
    WorkerState,
)

_log = structlog.get_logger(__name__)

MAGIC = b"RSCP"
CODEC_VERSION = 1
_HEADER = struct.Struct(">4sBI")
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


def object_name(partition: int) -> str:
    return f"partition-{partition}"


def encode_snapshot(snapshot: PartitionSnapshot, *, level: int = 1) -> bytes:
    body = zlib.compress(
        _encoder.encode(
            {
                "version": snapshot.version,
                "fingerprint": snapshot.fingerprint,
                "partition": snapshot.partition,
                "partition_count": snapshot.partition_count,
                "stream": snapshot.stream,
                "stream_created": snapshot.stream_created,
                "stream_seq": snapshot.stream_seq,
                "taken_at_ms": snapshot.taken_at_ms,
                "covers_seq": snapshot.covers_seq,
                "state": snapshot.state,
            }
        ),
        level,
    )
    return _HEADER.pack(MAGIC, CODEC_VERSION, zlib.crc32(body)) + body


def decode_snapshot(data: bytes) -> PartitionSnapshot:
    """The snapshot in ``data``; :class:`SnapshotRejectedError` (``corrupt`` or
    ``incompatible``) when it cannot be read."""
    corrupt = RestoreResult.CORRUPT
    if len(data) < _HEADER.size:
        raise SnapshotRejectedError(corrupt, f"{len(data)} bytes, shorter than the header")
    magic, codec, crc = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise SnapshotRejectedError(corrupt, f"bad magic {magic!r}")
    if codec != CODEC_VERSION:
        raise SnapshotRejectedError(
            RestoreResult.INCOMPATIBLE, f"codec v{codec}, this worker reads v{CODEC_VERSION}"
        )
    body = data[_HEADER.size :]
    if zlib.crc32(body) != crc:
        raise SnapshotRejectedError(corrupt, "checksum mismatch")
    try:
        doc = _decoder.decode(zlib.decompress(body))
    except (zlib.error, msgspec.DecodeError) as exc:
        raise SnapshotRejectedError(corrupt, f"{type(exc).__name__}: {exc}") from None
    try:
        if not isinstance(doc, dict) or not isinstance(doc["state"], dict):
            raise TypeError("not an object")
        snapshot = PartitionSnapshot(
            partition=_int(doc["partition"]),
            partition_count=_int(doc["partition_count"]),
            stream=str(doc["stream"]),
            stream_created=str(doc["stream_created"]),
            stream_seq=_int(doc["stream_seq"]),
            taken_at_ms=_int(doc["taken_at_ms"]),
            covers_seq=_int(doc["covers_seq"]),
            fingerprint=str(doc["fingerprint"]),
            state=doc["state"],
            version=_int(doc["version"]),
        )
    except (KeyError, TypeError) as exc:
        raise SnapshotRejectedError(
            RestoreResult.INCOMPATIBLE, f"unexpected layout: {type(exc).__name__}: {exc}"
        ) from None
    return snapshot


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {value!r:.40}")
    return value


@dataclass(slots=True)
class CheckpointStats:
    """Plain counters (exported at scrape time; the partitions status shows them)."""

    restore_results: Counter[str] = field(default_factory=Counter)
    restored_seq: dict[int, int] = field(default_factory=dict)
    """Partition → the sequence its restored snapshot covers."""
    restore_seconds: float | None = None
    writes: int = 0
    write_errors: int = 0
    deferred: int = 0
    """Checkpoints due but not taken: a write was still in flight."""
    intake_holds: int = 0
    """Checkpoints for which the feed held its intake until what it had decoded was
    processed (its queue had not emptied by itself)."""
    last_bytes: int = 0
    last_capture_seconds: float = 0.0
    last_write_seconds: float = 0.0
    last_written_seq: dict[int, int] = field(default_factory=dict)
    last_covers_seq: dict[int, int] = field(default_factory=dict)
    last_written_at: float | None = None
    """Wall clock (s) of the last successful checkpoint."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "restore_results": dict(self.restore_results),
            "restored_seq": {str(p): s for p, s in sorted(self.restored_seq.items())},
            "restore_seconds": self.restore_seconds,
            "writes": self.writes,
            "write_errors": self.write_errors,
            "deferred": self.deferred,
            "intake_holds": self.intake_holds,
            "last_bytes": self.last_bytes,
            "last_capture_seconds": round(self.last_capture_seconds, 4),
            "last_write_seconds": round(self.last_write_seconds, 4),
            "last_written_seq": {str(p): s for p, s in sorted(self.last_written_seq.items())},
        }


class PartitionCheckpoints:
    """Restores a worker's partitions at takeover; writes their snapshots every
    ``interval_seconds`` (0: never writes; restores still, so turning checkpoints off
    keeps the last snapshots usable — set ``restore=False`` to ignore them)."""

    def __init__(
        self,
        connection: NatsConnection,
        state: WorkerState,
        *,
        bucket: str,
        interval_seconds: float,
        partition_count: int,
        restore: bool = True,
        create_bucket: bool = True,
        replicas: int = 1,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._connection = connection
        self.state = state
        self.bucket = bucket
        self.interval = interval_seconds
        self.partition_count = partition_count
        self.restore_enabled = restore
        self.create_bucket = create_bucket
        self.replicas = replicas
        self._wall = wall_clock
        self.stats = CheckpointStats()
        self._store: Any = None
        self._stream = ""
        self._stream_created = ""
        self._next_at = time.monotonic() + interval_seconds
        self._writing: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.interval > 0

    async def _object_store(self, js: JetStreamContext) -> Any:
        if self._store is None:
            config = ObjectStoreConfig(
                description="realtime-strategies partition state checkpoints",
                storage=StorageType.FILE,
                replicas=self.replicas,
            )
            self._store = await open_or_create(
                lambda: js.object_store(self.bucket),
                (lambda: js.create_object_store(self.bucket, config))
                if self.create_bucket
                else None,
                BucketNotFoundError,
            )
        return self._store

    # ------------------------------------------------------------------ restore

    async def restore(
        self,
        js: JetStreamContext,
        partitions: Sequence[int],
        *,
        stream: str,
        stream_created: str,
        first_seq: int,
        last_seq: int,
    ) -> dict[int, int]:
        """Restore what can be restored of ``partitions``' snapshots; partition → the
        stream sequence its state covers (the others replay). Never raises but for
        cancellation."""
        self._stream, self._stream_created = stream, stream_created
        restored: dict[int, int] = {}
        if not self.restore_enabled:
            return restored
        started = time.monotonic()
        for partition in partitions:
            try:
                snapshot = await self._load(js, partition)
                if snapshot is None:
                    raise SnapshotRejectedError(RestoreResult.MISSING, "no snapshot stored")
                self._check(snapshot, partition, stream, stream_created, first_seq, last_seq)
                self.state.restore(snapshot)
            except asyncio.CancelledError:
                raise
            except SnapshotRejectedError as rejected:
                self._count(partition, rejected.result, rejected.detail)
                continue
            except Exception as exc:
                self._count(partition, RestoreResult.ERROR, f"{type(exc).__name__}: {exc}")
                continue
            restored[partition] = snapshot.stream_seq
            self.stats.restored_seq[partition] = snapshot.stream_seq
            self.stats.last_written_seq[partition] = snapshot.stream_seq
            self.stats.last_covers_seq[partition] = snapshot.covers_seq
            self.stats.restore_results[RestoreResult.RESTORED.value] += 1
            _log.info(
                "partition_checkpoint_restored",
                partition=partition,
                stream_seq=snapshot.stream_seq,
                age_seconds=round(self._wall() - snapshot.taken_at_ms / 1000.0, 1),
            )
        self.stats.restore_seconds = round(time.monotonic() - started, 3)
        return restored

    async def _load(self, js: JetStreamContext, partition: int) -> PartitionSnapshot | None:
        try:
            store = await self._object_store(js)
            result = await store.get(object_name(partition))
        except (ObjectNotFoundError, NotFoundError, BucketNotFoundError):
            return None
        data = result.data
        if not data:
            return None
        return decode_snapshot(bytes(data))

    def _check(
        self,
        snapshot: PartitionSnapshot,
        partition: int,
        stream: str,
        stream_created: str,
        first_seq: int,
        last_seq: int,
    ) -> None:
        if snapshot.version != FORMAT_VERSION or snapshot.fingerprint != self.state.fingerprint:
            raise SnapshotRejectedError(
                RestoreResult.INCOMPATIBLE,
                f"format v{snapshot.version}/{snapshot.fingerprint}, this worker reads "
                f"v{FORMAT_VERSION}/{self.state.fingerprint}",
            )
        if snapshot.partition != partition or snapshot.partition_count != self.partition_count:
            raise SnapshotRejectedError(
                RestoreResult.INCOMPATIBLE,
                f"partition {snapshot.partition}/{snapshot.partition_count}, "
                f"expected {partition}/{self.partition_count}",
            )
        if snapshot.stream != stream or snapshot.stream_created != stream_created:
            raise SnapshotRejectedError(
                RestoreResult.STREAM_CHANGED,
                f"taken on {snapshot.stream} created {snapshot.stream_created}, "
                f"the stream is {stream} created {stream_created}",
            )
        if snapshot.stream_seq > last_seq:
            raise SnapshotRejectedError(
                RestoreResult.STREAM_CHANGED,
                f"covers sequence {snapshot.stream_seq}, the stream ends at {last_seq}",
            )
        if max(snapshot.stream_seq, snapshot.covers_seq) + 1 < first_seq:
            raise SnapshotRejectedError(
                RestoreResult.GAP,
                f"covers sequence {snapshot.covers_seq}, the stream starts at {first_seq}",
            )

    def _count(self, partition: int, result: RestoreResult, detail: str) -> None:
        self.stats.restore_results[result.value] += 1
        log = _log.info if result is RestoreResult.MISSING else _log.warning
        log(
            "partition_checkpoint_not_restored",
            partition=partition,
            result=result.value,
            reason=detail,
            fallback="replay",
        )

    # ------------------------------------------------------------------ write

    def due(self) -> bool:
        """Time for a checkpoint (counts a deferred one while a write is in flight)."""
        if not self.enabled or time.monotonic() < self._next_at:
            return False
        if self._writing is not None and not self._writing.done():
            self.stats.deferred += 1
            return False
        return True

    def seconds_until_due(self) -> float:
        """How long until the next checkpoint is due (at least 50 ms)."""
        return max(0.05, self._next_at - time.monotonic())

    def capture(
        self,
        applied: Mapping[int, int],
        coverage: Callable[[Mapping[int, int]], Awaitable[Mapping[int, int]]] | None = None,
    ) -> None:
        """Snapshot, now, the partitions whose sequence moved since their last checkpoint
        (``applied``: partition → the last sequence applied to the state) and write them in
        the background. Call it only when everything delivered has been processed.

        ``coverage(applied)`` (awaited by the writer) tells, per partition, up to which
        stream sequence the partition is known to hold nothing more than ``applied`` (see
        :attr:`~application.checkpoints.PartitionSnapshot.covers_seq`)."""
        self._next_at = time.monotonic() + self.interval
        started = time.perf_counter()
        taken_at_ms = int(self._wall() * 1000)
        snapshots = []
        newest = max(applied.values(), default=0)
        covered = self.stats.last_covers_seq
        for partition, seq in sorted(applied.items()):
            if seq <= 0:
                continue  # nothing to restore
            if (
                self.stats.last_written_seq.get(partition) == seq
                and covered.get(partition, 0) >= newest
            ):
                continue  # unchanged, and its coverage cannot have grown either
            snapshots.append(
                PartitionSnapshot(
                    partition=partition,
                    partition_count=self.partition_count,
                    stream=self._stream,
                    stream_created=self._stream_created,
                    stream_seq=seq,
                    taken_at_ms=taken_at_ms,
                    covers_seq=seq,
                    fingerprint=self.state.fingerprint,
                    state=self.state.capture(partition),
                )
            )
        self.stats.last_capture_seconds = time.perf_counter() - started
        if snapshots:
            self._writing = asyncio.create_task(
                self._write(snapshots, dict(applied), coverage), name="checkpoint-write"
            )

    async def _write(
        self,
        snapshots: list[PartitionSnapshot],
        applied: dict[int, int],
        coverage: Callable[[Mapping[int, int]], Awaitable[Mapping[int, int]]] | None,
    ) -> None:
        started = time.perf_counter()
        written = 0
        try:
            if coverage is not None:
                with contextlib.suppress(Exception):  # best effort: covers_seq stays seq
                    covers = await coverage(applied)
                    snapshots = [
                        dataclasses.replace(
                            s, covers_seq=max(s.stream_seq, covers.get(s.partition, 0))
                        )
                        for s in snapshots
                    ]
            store = await self._object_store(self._connection.jetstream())
            for snapshot in snapshots:
                data = await asyncio.to_thread(encode_snapshot, snapshot)
                await store.put(object_name(snapshot.partition), data)
                self.stats.last_written_seq[snapshot.partition] = snapshot.stream_seq
                self.stats.last_covers_seq[snapshot.partition] = snapshot.covers_seq
                written += len(data)
                self.stats.writes += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.stats.write_errors += 1
            _log.warning("partition_checkpoint_write_failed", error=repr(exc))
            return
        finally:
            self.stats.last_write_seconds = time.perf_counter() - started
        self.stats.last_bytes = written
        self.stats.last_written_at = self._wall()
        _log.debug(
            "partition_checkpoint_written",
            partitions=[s.partition for s in snapshots],
            bytes=written,
            seconds=round(self.stats.last_write_seconds, 3),
        )

    async def flush(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait for the write in flight (shutdown)."""
        task = self._writing
        if task is not None and not task.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(task), timeout)
