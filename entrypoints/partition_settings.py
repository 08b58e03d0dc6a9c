"""Settings of symbol-partitioned scaling (docs/adr/0010-symbol-partitioning.md).

Read from the environment like :class:`entrypoints.settings.Settings`, in a class of their own
so that single-process deployments never see them. Defaults keep single-process mode.
"""

from __future__ import annotations

import os
import re

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from application.partitioning import DEFAULT_PARTITION_COUNT, MAX_PARTITION_COUNT, owned_partitions

DEFAULT_REPLAY_SECONDS = 3600.0
"""One hour: the longest window of the high-rate state (market-metrics history and its 1 h
pressure timeframe; ticker_velocity ≤ 300 s, trade_momentum decay ≤ 600 s, quote freshness
60 s, default cooldowns ≤ 1 h). See the ADR for what a longer horizon would add."""


_ORDINAL = re.compile(r"-(\d+)$")


def ordinal_from_hostname(hostname: str) -> int | None:
    """The StatefulSet ordinal at the end of a pod name (``realtime-strategies-2`` → 2)."""
    match = _ORDINAL.search(hostname.strip())
    return int(match.group(1)) if match else None


class PartitionSettings(BaseSettings):
    """Every environment variable of the router and of a partitioned worker."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    partitioned_mode: bool = Field(
        False, description="`serve` consumes its partitions of the stream (also on WORKER_COUNT>0)."
    )
    worker_count: int = Field(
        0, ge=0, le=MAX_PARTITION_COUNT, description="Workers W; 0 = single-process mode."
    )
    worker_index: int | None = Field(
        None, ge=0, description="This worker's index i; default: the HOSTNAME ordinal (`x-2`)."
    )
    partition_count: int = Field(
        DEFAULT_PARTITION_COUNT,
        ge=1,
        le=MAX_PARTITION_COUNT,
        description="Partitions P (fixed per deployment: changing it moves symbols).",
    )
    partition_subject_prefix: str = Field(
        "marketdata", description="Partition subjects: <prefix>.<partition>.<SYMBOL>.<kind>."
    )
    partition_stream: str = Field("MARKETDATA", description="JetStream stream over <prefix>.>.")
    partition_stream_create: bool = Field(
        True, description="Create the market-data stream if it does not exist."
    )
    partition_stream_replicas: int = Field(1, ge=1, le=5, description="Replicas if created.")
    partition_stream_max_bytes: int = Field(
        -1, ge=-1, description="Size limit of the stream if created (-1 = none)."
    )
    partition_replay_seconds: float = Field(
        DEFAULT_REPLAY_SECONDS,
        ge=0,
        description="Stream max_age and the takeover replay horizon (0 = no replay).",
    )
    partition_recover_seconds: float = Field(
        300.0,
        ge=0,
        description="Replayed messages this recent may re-publish signals the signal stream lacks.",
    )
    partition_checkpoint_interval_seconds: float = Field(
        30.0,
        ge=0,
        description="Each worker snapshots its partitions' state this often, so a takeover "
        "replays only what follows the snapshot (0 = no snapshots written).",
    )
    partition_checkpoint_bucket: str = Field(
        "partition_checkpoints",
        pattern=r"^[-\w]+$",
        description="JetStream Object Store bucket of the snapshots (one object per partition).",
    )
    partition_checkpoint_bucket_create: bool = Field(
        True, description="Create the checkpoint bucket if it does not exist."
    )
    partition_checkpoint_restore: bool = Field(
        True, description="Restore the snapshots at takeover (false: always replay)."
    )
    signal_budget_bucket: str = Field(
        "signal_budget",
        pattern=r"^[-\w]*$",
        description="KV bucket of the per-minute signal budget the workers share, so that "
        "MAX_SIGNALS_PER_MINUTE holds for the deployment; empty = each worker caps alone.",
    )
    signal_budget_bucket_create: bool = Field(
        True, description="Create the signal budget bucket if it does not exist."
    )
    signal_budget_horizon_seconds: float = Field(
        120.0,
        ge=0,
        le=3600,
        description="The budget counts a worker's signal exactly when it is stamped at most "
        "this long before the newest signal taken (workers are not in step in event time).",
    )
    signal_stream: str = Field(
        "",
        description="JetStream stream over <NATS_PUBLISHER_TOPIC>.> (e.g. SIGNALS); empty = none.",
    )
    signal_stream_create: bool = Field(True, description="Create SIGNAL_STREAM if missing.")
    signal_duplicate_window_seconds: float = Field(
        300.0, gt=0, description="duplicate_window of SIGNAL_STREAM if created."
    )
    worker_url_template: str = Field(
        "",
        description="Worker API URL with {index} for metrics reads of symbols owned elsewhere.",
    )
    worker_proxy_timeout_seconds: float = Field(2.0, gt=0, description="Owner proxy timeout.")
    router_queue_group: str = Field(
        "realtime-strategies-router", description="Queue group of the router replicas."
    )
    router_shards: int = Field(
        0,
        ge=0,
        le=MAX_PARTITION_COUNT,
        description="0: routers share the input in a queue group (order kept with one replica); "
        "R: R order-keeping routers, each for the partitions p mod R == its index.",
    )
    router_shard_index: int | None = Field(
        None, ge=0, description="This router's shard; default: the HOSTNAME ordinal."
    )
    router_acks: bool = Field(
        True, description="Routers wait for the stream's acks (counted failures, backpressure)."
    )
    router_max_pending_acks: int = Field(
        20_000, ge=1, description="Most unacknowledged router publishes in flight."
    )
    router_input_stream: str = Field(
        "",
        description="Failover: the stream capturing the raw input (e.g. MARKETINPUT) that a "
        "leader router reads; empty = plain subscription, no standby.",
    )
    router_input_stream_create: bool = Field(True, description="Create it if missing.")
    router_input_retention_seconds: float = Field(
        900.0, gt=0, description="max_age of the input stream if created (> any failover)."
    )
    router_lease_bucket: str = Field(
        "router_leases", description="KV bucket of the shard leases (TTL = the lease TTL)."
    )
    router_position_bucket: str = Field(
        "router_positions", description="KV bucket of each shard's routed input sequence."
    )
    router_lease_ttl_seconds: float = Field(
        6.0,
        gt=0,
        description="A standby takes over at most this long (plus TTL/4) after the leader "
        "stopped renewing; the leader renews every TTL/4 and fences itself at 0.75 x TTL.",
    )
    router_ack_timeout_seconds: float = Field(
        5.0, gt=0, description="A router publish not acknowledged this long is sent again."
    )
    router_ack_retries: int = Field(
        5,
        ge=0,
        description="Re-sends of an unacknowledged publish (same Nats-Msg-Id: stored once); "
        "(retries + 1) x timeout must stay inside the stream's duplicate_window (2 min).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> PartitionSettings:
        if self.enabled:
            count = self.workers
            if count > self.partition_count:
                raise ValueError(
                    f"WORKER_COUNT={count} exceeds PARTITION_COUNT={self.partition_count}"
                )
            if self.worker_index is not None and self.worker_index >= count:
                raise ValueError(f"WORKER_INDEX={self.worker_index} not in 0..{count - 1}")
        if self.router_shards > self.partition_count:
            raise ValueError(
                f"ROUTER_SHARDS={self.router_shards} exceeds PARTITION_COUNT={self.partition_count}"
            )
        return self

    def resolve_router_shard(self, hostname: str | None = None) -> int:
        """ROUTER_SHARD_INDEX, else the HOSTNAME ordinal (mod ROUTER_SHARDS in failover mode:
        a leader and a standby per shard); 0 when routers are not sharded."""
        if not self.router_shards:
            return 0
        if self.router_shard_index is not None:
            index = self.router_shard_index
        else:
            host = hostname if hostname is not None else os.environ.get("HOSTNAME", "")
            ordinal = ordinal_from_hostname(host)
            if ordinal is None:
                raise ValueError(
                    f"ROUTER_SHARDS={self.router_shards} but no ROUTER_SHARD_INDEX and no "
                    f"ordinal at the end of HOSTNAME={host!r}"
                )
            index = ordinal
        if index >= self.router_shards:
            if self.router_input_stream.strip():  # failover: pod i and i + R lead/stand by
                return index % self.router_shards
            raise ValueError(f"router shard {index} not below ROUTER_SHARDS={self.router_shards}")
        return index

    @property
    def enabled(self) -> bool:
        return self.partitioned_mode or self.worker_count > 0

    @property
    def workers(self) -> int:
        """W: WORKER_COUNT, or 1 when only PARTITIONED_MODE is set."""
        return max(1, self.worker_count)

    def resolve_worker_index(self, hostname: str | None = None) -> int:
        """WORKER_INDEX, else the ordinal at the end of HOSTNAME (a StatefulSet pod name)."""
        if self.worker_index is not None:
            return self.worker_index
        if self.workers == 1:
            return 0
        host = hostname if hostname is not None else os.environ.get("HOSTNAME", "")
        ordinal = ordinal_from_hostname(host)
        if ordinal is None:
            raise ValueError(
                f"no WORKER_INDEX and no ordinal at the end of HOSTNAME={host!r} "
                "(expected a StatefulSet pod name such as realtime-strategies-2)"
            )
        if ordinal >= self.workers:
            raise ValueError(
                f"HOSTNAME ordinal {ordinal} is not below WORKER_COUNT={self.workers}: "
                "scale the StatefulSet and WORKER_COUNT together"
            )
        return ordinal

    def owned(self, index: int) -> tuple[int, ...]:
        return owned_partitions(index, self.workers, self.partition_count)
