"""JetStream streams of the partitioned deployment: definitions and an idempotent "ensure".

- **market data** (``PARTITION_STREAM``, default ``MARKETDATA``) over ``<prefix>.>``: every
  routed message, kept ``max_age`` = ``PARTITION_REPLAY_SECONDS`` so a worker that starts or
  takes over partitions can rebuild their state by replaying them. File storage, limits
  retention, discard old.
- **signals** (``SIGNAL_STREAM``, e.g. ``SIGNALS``) over ``<NATS_PUBLISHER_TOPIC>.>``: the
  trade engine's input with a ``duplicate_window`` — every signal carries ``Nats-Msg-Id`` =
  its deterministic ``signal_id``, so a signal published twice inside the window (a takeover
  racing its predecessor's last publishes) is stored once. Workers also read its recent
  ids at takeover to tell which replayed signals were already published.

:func:`ensure_stream` creates a missing stream and leaves an existing one alone (operators may
manage it declaratively — ``deploy/partitioned`` has NACK resources with the same settings):
a different configuration is logged, never overwritten. :func:`ensure_bucket` does the same
for the Key-Value buckets (router leases and positions, the shared signal budget), and
:func:`open_or_create` is the one rule all of them (and the checkpoint object store) follow
when replicas starting together race to create the same thing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog
from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamInfo,
)
from nats.js.errors import APIError, BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

_log = structlog.get_logger(__name__)

T = TypeVar("T")


async def open_or_create(
    open_: Callable[[], Awaitable[T]],
    create: Callable[[], Awaitable[T]] | None,
    missing: type[NotFoundError] = NotFoundError,
) -> T:
    """What ``open_`` opens or, when it is ``missing``, what ``create`` makes (``missing`` is
    raised when there is no ``create``).

    Replicas starting together race to create the same stream or bucket, and the server
    refuses the losers' creates: "name already in use" when their configuration differs,
    "subjects overlap with an existing stream" while the winner's create is still in
    flight. So a refused create opens what the other made, looking again for up to a
    second (a clustered server may answer before the winner's stream is visible); only
    when there is still nothing is the refusal raised."""
    try:
        return await open_()
    except missing:
        if create is None:
            raise
    try:
        return await create()
    except APIError as refused:
        for pause in REOPEN_PAUSES:
            await asyncio.sleep(pause)
            with contextlib.suppress(missing):
                return await open_()
        raise refused from None


REOPEN_PAUSES = (0.0, 0.1, 0.2, 0.3, 0.4)
"""The pause before each look for what another replica created after a refused create."""


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """What the service needs of a stream (the rest is left to the operator)."""

    name: str
    subjects: tuple[str, ...]
    max_age_seconds: float
    duplicate_window_seconds: float = 120.0
    max_bytes: int = -1
    replicas: int = 1
    storage: str = "file"
    description: str = ""

    def config(self) -> StreamConfig:
        return StreamConfig(
            name=self.name,
            description=self.description or None,
            subjects=list(self.subjects),
            retention=RetentionPolicy.LIMITS,
            discard=DiscardPolicy.OLD,
            max_age=self.max_age_seconds,
            max_bytes=self.max_bytes,
            max_msgs=-1,
            storage=StorageType.FILE if self.storage == "file" else StorageType.MEMORY,
            num_replicas=self.replicas,
            duplicate_window=min(self.duplicate_window_seconds, self.max_age_seconds),
        )


def market_data_stream(
    name: str,
    subject_prefix: str,
    replay_seconds: float,
    *,
    max_bytes: int = -1,
    replicas: int = 1,
) -> StreamSpec:
    return StreamSpec(
        name=name,
        subjects=(f"{subject_prefix}.>",),
        max_age_seconds=replay_seconds,
        duplicate_window_seconds=min(120.0, replay_seconds),
        max_bytes=max_bytes,
        replicas=replicas,
        description=(
            "realtime-strategies market data by symbol partition "
            "(<prefix>.<partition>.<SYMBOL>.<kind>); replayed by workers at takeover"
        ),
    )


def signal_stream(
    name: str,
    publisher_topic: str,
    *,
    duplicate_window_seconds: float = 300.0,
    max_age_seconds: float = 86_400.0,
    replicas: int = 1,
) -> StreamSpec:
    return StreamSpec(
        name=name,
        subjects=(f"{publisher_topic}.>",),
        max_age_seconds=max_age_seconds,
        duplicate_window_seconds=duplicate_window_seconds,
        replicas=replicas,
        description=(
            "Trading signals of realtime-strategies (<topic>.<strategy_id>); Nats-Msg-Id = "
            "signal_id deduplicates replays within duplicate_window"
        ),
    )


async def ensure_stream(
    js: JetStreamContext, spec: StreamSpec, *, create: bool = True
) -> StreamInfo:
    """The stream's info, creating it from ``spec`` if it does not exist (and ``create``).

    Raises ``NotFoundError`` when it is missing and ``create`` is false.
    """

    async def add() -> StreamInfo:
        info = await js.add_stream(spec.config())
        _log.info("jetstream_stream_created", stream=spec.name, subjects=list(spec.subjects))
        return info

    info = await open_or_create(lambda: js.stream_info(spec.name), add if create else None)
    _check(info, spec)
    return info


async def ensure_bucket(
    js: JetStreamContext, bucket: str, *, ttl: float | None = None, replicas: int = 1
) -> KeyValue:
    """The Key-Value bucket, created (file storage, one value per key) if it does not exist."""
    config = KeyValueConfig(
        bucket=bucket, history=1, ttl=ttl, storage=StorageType.FILE, replicas=replicas
    )
    return await open_or_create(
        lambda: js.key_value(bucket), lambda: js.create_key_value(config), BucketNotFoundError
    )


def _check(info: StreamInfo, spec: StreamSpec) -> None:
    config = info.config
    subjects = set(config.subjects or ())
    missing = [s for s in spec.subjects if s not in subjects]
    if missing:
        _log.error(
            "jetstream_stream_subjects_differ",
            stream=spec.name,
            expected=list(spec.subjects),
            actual=sorted(subjects),
        )
    max_age = config.max_age or 0.0
    if max_age and max_age + 1e-6 < spec.max_age_seconds:
        _log.warning(
            "jetstream_stream_retention_shorter_than_needed",
            stream=spec.name,
            max_age_seconds=max_age,
            wanted_seconds=spec.max_age_seconds,
        )
