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
a different configuration is logged, never overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig, StreamInfo
from nats.js.errors import APIError, NotFoundError

_log = structlog.get_logger(__name__)

STREAM_NAME_IN_USE = 10058
"""JetStream API error code: stream name already in use with a different configuration."""


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
    try:
        info = await js.stream_info(spec.name)
    except NotFoundError:
        if not create:
            raise
        try:
            info = await js.add_stream(spec.config())
            _log.info("jetstream_stream_created", stream=spec.name, subjects=list(spec.subjects))
            return info
        except APIError as error:
            if error.err_code != STREAM_NAME_IN_USE:
                raise
            info = await js.stream_info(spec.name)  # created concurrently by another replica
    _check(info, spec)
    return info


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
