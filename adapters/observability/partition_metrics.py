"""Prometheus metrics of symbol partitioning: the router's and a worker's partition feed.

Scrape-time collectors over the plain counters the router and the feed keep (nothing on the
hot path). The router has a registry of its own (:class:`RouterMetrics`); a worker's feed
metrics join the service registry (:func:`register_partition_feed`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from application.checkpoints import FALLBACK_RESULTS

PREFIX = "realtime_strategies"

_ROUTER_COUNTS: tuple[tuple[str, str, str, str | None], ...] = (
    ("received", f"{PREFIX}_router_messages_received_total", "Raw messages received.", None),
    (
        "routed",
        f"{PREFIX}_router_messages_routed_total",
        "Messages republished to a partition subject, by kind.",
        "kind",
    ),
    (
        "unroutable",
        f"{PREFIX}_router_messages_unroutable_total",
        "Messages that could not be routed, by reason (never silently dropped).",
        "reason",
    ),
    (
        "dead_lettered",
        f"{PREFIX}_router_messages_dead_lettered_total",
        "Unroutable messages dead-lettered.",
        None,
    ),
    (
        "publish_errors",
        f"{PREFIX}_router_publish_errors_total",
        "Partition publishes not stored by JetStream, by reason.",
        "reason",
    ),
)
"""The router's counters: (its stats key, metric name, help, label of a count by label)."""

ROUTER_METRIC_NAMES = (
    *(name for _, name, _, _ in _ROUTER_COUNTS),
    f"{PREFIX}_router_pending_acks",
    f"{PREFIX}_nats_connected",
)
WORKER_METRIC_NAMES = (
    f"{PREFIX}_partitions_owned",
    f"{PREFIX}_partition_replay_complete",
    f"{PREFIX}_partition_replay_messages_total",
    f"{PREFIX}_partition_live_messages_total",
    f"{PREFIX}_partition_replay_signals_suppressed_total",
    f"{PREFIX}_partition_replay_signals_recovered_total",
    f"{PREFIX}_partition_queue_depth",
    f"{PREFIX}_checkpoint_restore_total",
    f"{PREFIX}_checkpoint_writes_total",
    f"{PREFIX}_checkpoint_bytes",
    f"{PREFIX}_checkpoint_age_seconds",
)


def _counter(name: str, help_text: str, labels: tuple[str, ...] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(name.removesuffix("_total"), help_text, labels=list(labels))


def _labelled(name: str, help_text: str, label: str, counts: Mapping[str, int]) -> Metric:
    family = _counter(name, help_text, (label,))
    for key, value in sorted(counts.items()):
        family.add_metric([str(key)], float(value))
    return family


class _RouterCollector(Collector):
    def __init__(self, stats: Callable[[], Mapping[str, Any]], connected: Callable[[], bool]):
        self._stats = stats
        self._connected = connected

    def collect(self) -> Iterable[Metric]:
        stats = self._stats()
        for key, name, help_text, label in _ROUTER_COUNTS:
            if label is None:
                yield CounterMetricFamily(name, help_text, value=float(stats[key]))
            else:
                yield _labelled(name, help_text, label, stats[key])
        yield GaugeMetricFamily(
            f"{PREFIX}_router_pending_acks",
            "Partition publishes awaiting the stream's ack.",
            value=float(stats["pending_acks"]),
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_nats_connected",
            "1 while NATS is connected.",
            value=1.0 if self._connected() else 0.0,
        )


class RouterMetrics:
    """The router process's registry."""

    def __init__(self, stats: Callable[[], Mapping[str, Any]], connected: Callable[[], bool]):
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_RouterCollector(stats, connected))

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class _FeedCollector(Collector):
    def __init__(self, feed: Any) -> None:
        self._feed = feed

    def collect(self) -> Iterable[Metric]:
        feed = self._feed
        yield GaugeMetricFamily(
            f"{PREFIX}_partitions_owned",
            "Partitions this worker owns.",
            value=float(len(feed.partitions)),
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_partition_replay_complete",
            "1 once the takeover replay of the owned partitions is processed.",
            value=1.0 if feed.replay_complete else 0.0,
        )
        replayed = _counter(
            f"{PREFIX}_partition_replay_messages_total",
            "Stream messages replayed (state rebuilt, signals gated), by partition.",
            ("partition",),
        )
        live = _counter(
            f"{PREFIX}_partition_live_messages_total",
            "Stream messages consumed live, by partition.",
            ("partition",),
        )
        for partition, progress in sorted(feed.progress.items()):
            replayed.add_metric([str(partition)], float(progress.replayed))
            live.add_metric([str(partition)], float(progress.live))
        yield replayed
        yield live
        yield CounterMetricFamily(
            f"{PREFIX}_partition_replay_signals_suppressed_total",
            "Signals of replayed messages not published (already published or too old).",
            value=float(feed.replay.signals_suppressed),
        )
        yield CounterMetricFamily(
            f"{PREFIX}_partition_replay_signals_recovered_total",
            "Signals of replayed messages published because the signal stream lacked them.",
            value=float(feed.replay.signals_recovered),
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_partition_queue_depth",
            "Decoded items queued.",
            value=float(feed.queue_depth),
        )
        checkpoints = getattr(feed, "checkpoints", None)
        if checkpoints is not None:
            yield from _checkpoint_metrics(checkpoints.stats, self._wall())

    @staticmethod
    def _wall() -> float:
        return time.time()


def _checkpoint_metrics(stats: Any, now: float) -> Iterable[Metric]:
    restores = _counter(
        f"{PREFIX}_checkpoint_restore_total",
        "Partition snapshots at takeover, by result (restored, or why the partition was "
        "replayed instead: missing, corrupt, incompatible, stream_changed, gap, error).",
        ("result",),
    )
    for result in ("restored", *FALLBACK_RESULTS):
        restores.add_metric([result], float(stats.restore_results.get(result, 0)))
    yield restores
    writes = _counter(
        f"{PREFIX}_checkpoint_writes_total", "Partition snapshots written, by result.", ("result",)
    )
    writes.add_metric(["ok"], float(stats.writes))
    writes.add_metric(["error"], float(stats.write_errors))
    writes.add_metric(["deferred"], float(stats.deferred))
    yield writes
    yield GaugeMetricFamily(
        f"{PREFIX}_checkpoint_bytes",
        "Encoded size of the last checkpoint (all partitions).",
        value=float(stats.last_bytes),
    )
    written = stats.last_written_at
    yield GaugeMetricFamily(
        f"{PREFIX}_checkpoint_age_seconds",
        "Seconds since the last successful checkpoint (NaN before the first).",
        value=float("nan") if written is None else max(0.0, now - written),
    )


def register_partition_feed(registry: CollectorRegistry, feed: Any) -> None:
    """Add a worker feed's metrics to the service registry."""
    registry.register(_FeedCollector(feed))
