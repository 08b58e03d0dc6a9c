"""Prometheus metrics of the service, in a registry of their own.

Two kinds of metrics:

* **Hot-path metrics** updated as things happen: the per-strategy latency histogram
  (through :class:`ProcessingObserver`), the signal confidence histogram
  (:meth:`PrometheusMetrics.signals_emitted`), the consumer lag
  (:meth:`PrometheusMetrics.message_consumed`, one attribute store per batch) and the
  per-message processing latency (:meth:`PrometheusMetrics.message_processed`). The
  latency histograms (one or more updates per message) are plain bucket counts exported at
  scrape time — a bisect and two increments, no lock, about a quarter of a
  prometheus-client update; the rest are prometheus-client objects whose label children are
  cached.
* **Scrape-time metrics** read from plain counters other objects already keep (processing
  stats, decode stats, the signal sink, the NATS connection, the config service, health):
  evaluations by result, errors and suppressions are the engine's own counts
  (:class:`~domain.engine.EngineStats`), counted once;
  the constructor takes small callables (:class:`ScrapeSources`) and a custom collector calls
  them only when ``/metrics`` is scraped, so they cost nothing per message. A source that
  raises is skipped for that scrape (and logged), it never breaks the exposition.

Every exported name is declared once in :data:`METRICS` (and :data:`METRIC_NAMES`); dashboards
and alert rules are checked against it. The reference README's names are all among them:
``messages_processed_total``, ``messages_errors_total``, ``processing_latency_seconds``,
``signals_generated_total``, ``nats_connected`` and ``circuit_breaker_state{name}``.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from domain.engine import EngineStats
from domain.governance import Suppression
from domain.live_outcomes import TRADE, LiveOutcome, OutcomeChange
from domain.signal import Signal

log = structlog.get_logger("adapters.observability")

PREFIX = "realtime_strategies"

MetricType = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True, slots=True)
class MetricInfo:
    """One exported metric: its full name (counters end in ``_total``), type and labels."""

    name: str
    type: MetricType
    labels: tuple[str, ...]
    help: str


METRICS: tuple[MetricInfo, ...] = (
    # processing (hot path, via ProcessingObserver)
    MetricInfo(
        f"{PREFIX}_strategy_latency_seconds",
        "histogram",
        ("strategy",),
        "Time to evaluate one strategy on one market event.",
    ),
    MetricInfo(
        f"{PREFIX}_strategy_executions_total",
        "counter",
        ("strategy", "result"),
        "Strategy evaluations by result: signal, no_signal, cooldown, disabled, error.",
    ),
    MetricInfo(
        f"{PREFIX}_strategy_errors_total",
        "counter",
        ("strategy",),
        "Strategy evaluations that raised (isolated: the other strategies still ran).",
    ),
    MetricInfo(
        f"{PREFIX}_cooldown_suppressed_total",
        "counter",
        ("strategy",),
        "Signals suppressed because the same action on the symbol is within its cooldown.",
    ),
    MetricInfo(
        f"{PREFIX}_signals_suppressed_total",
        "counter",
        ("strategy", "reason"),
        "Signals a strategy decided but governance held back, by reason: cooldown, reversal, "
        "unconfirmed, not_rearmed, confidence, stale, rate_cap, paused.",
    ),
    MetricInfo(
        f"{PREFIX}_signal_confidence",
        "histogram",
        ("strategy",),
        "Confidence of the signals emitted.",
    ),
    MetricInfo(
        f"{PREFIX}_processing_latency_seconds",
        "histogram",
        (),
        "Time from taking a decoded market message off the feed to its signals handed to the "
        "sink (every strategy, the gate, the publish hand-off).",
    ),
    # input (scrape time)
    MetricInfo(
        f"{PREFIX}_messages_processed_total",
        "counter",
        ("type",),
        "Market messages processed, by type (depth, trade, ticker, ...).",
    ),
    MetricInfo(
        f"{PREFIX}_messages_invalid_total",
        "counter",
        ("reason",),
        "Market messages skipped as invalid, by reason.",
    ),
    MetricInfo(
        f"{PREFIX}_messages_errors_total",
        "counter",
        (),
        "Market messages that failed: rejected as invalid (the by-design skips unknown_symbol "
        "and unsupported_stream excluded) or whose processing raised.",
    ),
    MetricInfo(
        f"{PREFIX}_consumer_lag_seconds",
        "gauge",
        (),
        "Wall time now minus the exchange event time of the last message processed.",
    ),
    # output (scrape time)
    MetricInfo(
        f"{PREFIX}_signals_generated_total",
        "counter",
        ("strategy", "action"),
        "Signals generated, by strategy and action (in a partitioned worker also those its "
        "takeover replay or the shared per-minute budget then held back).",
    ),
    MetricInfo(
        f"{PREFIX}_publish_errors_total",
        "counter",
        (),
        "Failed attempts to publish a signal to NATS (each retried or buffered).",
    ),
    MetricInfo(
        f"{PREFIX}_signal_budget_errors_total",
        "counter",
        (),
        "Signals a partitioned worker published without a slot of the deployment's shared "
        "per-minute budget because the budget could not be reached (its own cap still held).",
    ),
    MetricInfo(
        f"{PREFIX}_signal_publish_duplicates_total",
        "counter",
        (),
        "Signal publishes the signal stream acknowledged as duplicates (re-sent after an "
        "unacknowledged publish): stored once, delivered again to core NATS subscribers.",
    ),
    MetricInfo(
        f"{PREFIX}_signals_dropped_total",
        "counter",
        ("reason",),
        "Signals that could not be delivered, by reason (e.g. buffer_full).",
    ),
    MetricInfo(
        f"{PREFIX}_signal_buffer_size",
        "gauge",
        (),
        "Signals buffered in memory waiting for NATS.",
    ),
    MetricInfo(
        f"{PREFIX}_circuit_breaker_state",
        "gauge",
        ("name",),
        "Circuit breaker state: 0 closed, 1 open, 2 half-open.",
    ),
    # dependencies and health (scrape time)
    MetricInfo(
        f"{PREFIX}_nats_connected",
        "gauge",
        (),
        "1 if the NATS connection is up, else 0.",
    ),
    MetricInfo(
        f"{PREFIX}_config_store_up",
        "gauge",
        ("store",),
        "1 if the configuration store answered its last probe, else 0.",
    ),
    MetricInfo(
        f"{PREFIX}_config_cache_hits_total",
        "counter",
        (),
        "Effective-config lookups answered from the cache.",
    ),
    MetricInfo(
        f"{PREFIX}_config_cache_misses_total",
        "counter",
        (),
        "Effective-config lookups that had to resolve from the stores.",
    ),
    MetricInfo(
        f"{PREFIX}_config_events_total",
        "counter",
        ("event",),
        "Configuration cache and write events: store reloads by broadcast, ignored "
        "(stale, forged, unknown) broadcasts, refreshes and their failures, invalid stored "
        "configs, lost write races, failed broadcasts, writes refused with 429.",
    ),
    MetricInfo(
        f"{PREFIX}_signal_pauses_active",
        "gauge",
        (),
        "Signal pauses in force (POST /api/v1/signals/pause): while one covers a signal, it "
        'is counted in signals_suppressed_total{reason="paused"} instead of published.',
    ),
    MetricInfo(
        f"{PREFIX}_ready",
        "gauge",
        (),
        "1 if the service reported ready at its last readiness check, else 0.",
    ),
    # live outcomes of published signals (push, from the outcome recorder)
    MetricInfo(
        f"{PREFIX}_signal_outcomes_total",
        "counter",
        ("strategy", "horizon", "config_version", "result"),
        "Published signals scored, by horizon (1m, 5m, 15m, 1h, trade) and config version; "
        "result hit/miss at a horizon (moved the signal's way), win/loss/unfilled for the trade.",
    ),
    MetricInfo(
        f"{PREFIX}_signal_outcome_net_bps",
        "histogram",
        ("strategy", "horizon"),
        "Net basis points after fees of scored signals, by horizon (and closed trade).",
    ),
    MetricInfo(
        f"{PREFIX}_signal_outcome_net_bps_cumulative",
        "gauge",
        ("strategy", "horizon"),
        "Running sum of the net basis points of scored signals (the histogram has negative "
        "buckets, so it exports no _sum): mean = delta(this) / increase(histogram _count).",
    ),
)
"""Every metric the service exports. Names are as queried (counters with ``_total``;
histograms expose ``_bucket``, ``_sum`` and ``_count`` series under the base name)."""

METRIC_NAMES: tuple[str, ...] = tuple(m.name for m in METRICS)

_INFO = {m.name: m for m in METRICS}

LATENCY_BUCKETS: tuple[float, ...] = (
    1e-6,
    2.5e-6,
    5e-6,
    1e-5,
    2.5e-5,
    5e-5,
    1e-4,
    2.5e-4,
    5e-4,
    1e-3,
    2.5e-3,
    5e-3,
    1e-2,
    2.5e-2,
    5e-2,
)
"""Seconds; strategy evaluations take microseconds, the reference's budget is 50 ms."""

PROCESSING_BUCKETS: tuple[float, ...] = (*LATENCY_BUCKETS, 0.1, 0.25, 0.5, 1.0)
"""Seconds; a message's processing includes awaiting the sink's hand-off."""

PROCESSING_BOUNDS: tuple[float, ...] = (*PROCESSING_BUCKETS, math.inf)
_PROCESSING_LE: tuple[str, ...] = tuple(
    floatToGoString(bound)  # type: ignore[no-untyped-call]
    for bound in PROCESSING_BOUNDS
)

LATENCY_BOUNDS: tuple[float, ...] = (*LATENCY_BUCKETS, math.inf)
_LATENCY_LE: tuple[str, ...] = tuple(
    floatToGoString(bound)  # type: ignore[no-untyped-call]
    for bound in LATENCY_BOUNDS
)
"""The ``le`` labels of the latency buckets, formatted as prometheus_client does."""

CONFIDENCE_BUCKETS: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
OUTCOME_BPS_BUCKETS: tuple[float, ...] = (
    -200.0,
    -100.0,
    -50.0,
    -25.0,
    -10.0,
    0.0,
    10.0,
    25.0,
    50.0,
    100.0,
    200.0,
)
"""Net basis points of an outcome (a round trip costs ~20 bps in fees)."""
"""Confidence; 0.5 / 0.7 / 0.9 are the weak/medium/strong/extreme boundaries."""

_EVENT_TYPE_LABELS = {
    "DepthSnapshot": "depth",
    "Trade": "trade",
    "Ticker": "ticker",
    "DominanceObservation": "dominance",
    "VenueQuote": "quote",
    "WhaleTransfer": "whale_transfer",
    "ExchangeFlow": "exchange_flow",
}


def event_type_label(name: str) -> str:
    """``"DepthSnapshot"`` → ``"depth"``; unknown names are passed through lower-cased."""
    return _EVENT_TYPE_LABELS.get(name, name.lower())


CountsSource = Callable[[], Mapping[str, float]]
ValueSource = Callable[[], float | int | bool | None]


@dataclass(slots=True)
class ScrapeSources:
    """Callables read at scrape time; every one is optional (absent → metric not exported).

    * ``processing``: the engine's :class:`EngineStats` → ``messages_processed_total``
      (event types) and ``signals_generated_total``.
    * ``messages_by_type``: overrides the ``messages_processed_total`` source, e.g. wire
      decode stats that also count skipped stream types (``kline``, ``bookTicker``).
    * ``invalid_by_reason``: ``{reason: count}`` of messages skipped as invalid.
    * ``message_errors``: messages that failed (invalid, by-design skips excluded, or
      processing raised) → ``messages_errors_total``.
    * ``last_event_time_ms``: exchange event time of the last message (→ consumer lag).
    * ``signal_budget_errors``: signals published without the shared budget's slot.
    * ``publish_errors``, ``signal_duplicate_acks``, ``signals_dropped`` (``{reason:
      count}``), ``signal_buffer_size``: the signal sink's counters.
    * ``circuit_breakers``: ``{name: state}`` with state 0/1/2 (``BreakerState`` is an
      ``IntEnum``).
    * ``nats_connected``: truthy when connected.
    * ``config_stores_up``: ``{store: up}``.
    * ``config_cache``: ``{"hits": n, "misses": m}``.
    * ``config_events``: ``{event: count}`` → ``config_events_total{event}``.
    * ``signal_pauses``: the number of active signal pauses → ``signal_pauses_active``.
    * ``ready``: the last readiness verdict (None = not checked yet → not exported).
    """

    processing: Callable[[], EngineStats | None] | None = None
    messages_by_type: CountsSource | None = None
    invalid_by_reason: CountsSource | None = None
    message_errors: ValueSource | None = None
    last_event_time_ms: ValueSource | None = None
    publish_errors: ValueSource | None = None
    signal_budget_errors: ValueSource | None = None
    signal_duplicate_acks: ValueSource | None = None
    signals_dropped: CountsSource | None = None
    signal_buffer_size: ValueSource | None = None
    circuit_breakers: Callable[[], Mapping[str, int]] | None = None
    nats_connected: ValueSource | None = None
    config_stores_up: Callable[[], Mapping[str, bool]] | None = None
    config_cache: CountsSource | None = None
    config_events: CountsSource | None = None
    signal_pauses: ValueSource | None = None
    ready: ValueSource | None = None


def _counter(name: str) -> CounterMetricFamily:
    info = _INFO[name]
    return CounterMetricFamily(name, info.help, labels=info.labels or None)


def _gauge(name: str) -> GaugeMetricFamily:
    info = _INFO[name]
    return GaugeMetricFamily(name, info.help, labels=info.labels or None)


def _finite(value: object) -> float | None:
    if value is None or isinstance(value, str):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


Samples = Iterable[tuple[tuple[str, ...], object]]
"""A scraped family's samples: label values and value (a value that is not a finite number is
left out)."""

Builder = Callable[["PrometheusMetrics", str], Metric | None]
"""Builds the family ``name`` at scrape time; None leaves it out of this scrape."""


class _ScrapeCollector(Collector):
    """Reads :class:`ScrapeSources` when the registry is collected."""

    def __init__(self, owner: PrometheusMetrics) -> None:
        self._owner = owner

    def describe(self) -> Iterable[Metric]:
        for info in METRICS:
            if info.name not in _SCRAPED:
                continue
            if info.type == "histogram":
                yield HistogramMetricFamily(info.name, info.help, labels=info.labels)
            else:
                yield _counter(info.name) if info.type == "counter" else _gauge(info.name)

    def collect(self) -> Iterable[Metric]:
        owner = self._owner
        for name, build in _BUILDERS:
            try:
                family = build(owner, name)
            except Exception as error:  # a broken source must not break the scrape
                owner.scrape_errors += 1
                log.warning(
                    "metrics_source_failed",
                    metric=name,
                    error_type=type(error).__name__,
                    error=str(error)[:200],
                )
                continue
            if family is not None:
                yield family


def _samples(read: Callable[[PrometheusMetrics], Samples | None]) -> Builder:
    """The builder of a counter or gauge (its type as :data:`METRICS` declares it) whose
    samples ``read`` gives, or None to leave the family out."""

    def build(m: PrometheusMetrics, name: str) -> Metric | None:
        samples = read(m)
        if samples is None:
            return None
        family = _counter(name) if _INFO[name].type == "counter" else _gauge(name)
        for labels, value in samples:
            number = _finite(value)
            if number is not None:
                family.add_metric(list(labels), number)
        return family

    return build


def _value(value: object) -> Samples | None:
    """One unlabelled sample; None (the family left out) when ``value`` is not finite."""
    return None if _finite(value) is None else (((), value),)


def _flag(value: object) -> Samples:
    return (((), 1.0 if value else 0.0),)


def _by_label(counts: Mapping[str, object]) -> Samples:
    """One sample per key of ``counts``, in label order."""
    return (((str(label),), value) for label, value in sorted(counts.items(), key=_label_order))


def _label_order(item: tuple[object, object]) -> str:
    return str(item[0])


def _scalar(source: Callable[[ScrapeSources], ValueSource | None]) -> Builder:
    """A family of one unlabelled sample read from the source ``source`` picks."""
    return _samples(lambda m: None if (read := source(m.sources)) is None else _value(read()))


def _counts(source: Callable[[ScrapeSources], CountsSource | None]) -> Builder:
    """A family of one sample per key of the ``{label: count}`` source ``source`` picks."""
    return _samples(lambda m: None if (read := source(m.sources)) is None else _by_label(read()))


def _from_engine(samples: Callable[[EngineStats], Samples]) -> Builder:
    """A family of the engine's own counts (:class:`EngineStats`); left out without them."""

    def read(m: PrometheusMetrics) -> Samples | None:
        stats = _engine_stats(m)
        return None if stats is None else samples(stats)

    return _samples(read)


def _engine_stats(m: PrometheusMetrics) -> EngineStats | None:
    return m.sources.processing() if m.sources.processing is not None else None


def _messages_processed(m: PrometheusMetrics) -> Samples | None:
    source = m.sources.messages_by_type
    if source is not None:
        return _by_label(source())
    stats = _engine_stats(m)
    if stats is None:
        return None
    counts: dict[str, float] = {}
    for event_type, count in stats.events_by_type.items():
        label = event_type_label(event_type)
        counts[label] = counts.get(label, 0) + count
    return _by_label(counts)


def _signals_generated(stats: EngineStats) -> Samples:
    return sorted(stats.signals_by_strategy_action.items())


def _strategy_executions(stats: EngineStats) -> Samples:
    results = stats.outcomes
    for strategy, count in stats.strategy_errors.items():
        if count:
            results[(strategy, "error")] = count
    return sorted(results.items())


def _strategy_errors(stats: EngineStats) -> Samples:
    return (
        ((strategy,), count) for strategy, count in sorted(stats.strategy_errors.items()) if count
    )


def _cooldown_suppressed(stats: EngineStats) -> Samples:
    return (
        ((strategy,), count)
        for (strategy, reason), count in sorted(stats.suppressed_by_strategy().items())
        if reason == Suppression.COOLDOWN
    )


def _signals_suppressed(stats: EngineStats) -> Samples:
    return sorted(stats.suppressed_by_strategy().items())


def _consumer_lag(m: PrometheusMetrics) -> Samples | None:
    lag = m.consumer_lag_seconds()
    return None if lag is None else (((), lag),)


def _circuit_breakers(m: PrometheusMetrics) -> Samples | None:
    source = m.sources.circuit_breakers
    if source is None:
        return None
    return (((str(breaker),), int(state)) for breaker, state in sorted(source().items()))


def _nats_connected(m: PrometheusMetrics) -> Samples | None:
    source = m.sources.nats_connected
    return None if source is None else _flag(source())


def _config_stores_up(m: PrometheusMetrics) -> Samples | None:
    source = m.sources.config_stores_up
    if source is None:
        return None
    return (((str(store),), 1.0 if up else 0.0) for store, up in sorted(source().items()))


def _config_cache(key: str) -> Builder:
    return _samples(
        lambda m: None if (read := m.sources.config_cache) is None else _value(read().get(key))
    )


def _ready(m: PrometheusMetrics) -> Samples | None:
    value = m.sources.ready() if m.sources.ready is not None else m.last_ready
    return None if value is None else _flag(value)


def _cumulative(bounds: tuple[str, ...], histogram: _Histogram) -> list[tuple[str, float]]:
    cumulative = 0
    buckets: list[tuple[str, float]] = []
    for bound, count in zip(bounds, histogram.counts, strict=True):
        cumulative += count
        buckets.append((bound, cumulative))
    return buckets


def _strategy_latency(m: PrometheusMetrics, name: str) -> Metric | None:
    family = HistogramMetricFamily(name, _INFO[name].help, labels=["strategy"])
    for strategy, histogram in sorted(m.latency_histograms.items()):
        family.add_metric([strategy], _cumulative(_LATENCY_LE, histogram), histogram.sum)
    return family


def _processing_latency(m: PrometheusMetrics, name: str) -> Metric | None:
    family = HistogramMetricFamily(name, _INFO[name].help)
    histogram = m.processing_histogram
    family.add_metric([], _cumulative(_PROCESSING_LE, histogram), histogram.sum)
    return family


_BUILDERS: tuple[tuple[str, Builder], ...] = (
    (f"{PREFIX}_strategy_latency_seconds", _strategy_latency),
    (f"{PREFIX}_processing_latency_seconds", _processing_latency),
    (f"{PREFIX}_strategy_executions_total", _from_engine(_strategy_executions)),
    (f"{PREFIX}_strategy_errors_total", _from_engine(_strategy_errors)),
    (f"{PREFIX}_cooldown_suppressed_total", _from_engine(_cooldown_suppressed)),
    (f"{PREFIX}_signals_suppressed_total", _from_engine(_signals_suppressed)),
    (f"{PREFIX}_messages_processed_total", _samples(_messages_processed)),
    (f"{PREFIX}_messages_invalid_total", _counts(lambda s: s.invalid_by_reason)),
    (f"{PREFIX}_messages_errors_total", _scalar(lambda s: s.message_errors)),
    (f"{PREFIX}_consumer_lag_seconds", _samples(_consumer_lag)),
    (f"{PREFIX}_signals_generated_total", _from_engine(_signals_generated)),
    (f"{PREFIX}_publish_errors_total", _scalar(lambda s: s.publish_errors)),
    (f"{PREFIX}_signal_budget_errors_total", _scalar(lambda s: s.signal_budget_errors)),
    (
        f"{PREFIX}_signal_publish_duplicates_total",
        _scalar(lambda s: s.signal_duplicate_acks),
    ),
    (f"{PREFIX}_signals_dropped_total", _counts(lambda s: s.signals_dropped)),
    (f"{PREFIX}_signal_buffer_size", _scalar(lambda s: s.signal_buffer_size)),
    (f"{PREFIX}_circuit_breaker_state", _samples(_circuit_breakers)),
    (f"{PREFIX}_nats_connected", _samples(_nats_connected)),
    (f"{PREFIX}_config_store_up", _samples(_config_stores_up)),
    (f"{PREFIX}_config_cache_hits_total", _config_cache("hits")),
    (f"{PREFIX}_config_cache_misses_total", _config_cache("misses")),
    (f"{PREFIX}_config_events_total", _counts(lambda s: s.config_events)),
    (f"{PREFIX}_signal_pauses_active", _scalar(lambda s: s.signal_pauses)),
    (f"{PREFIX}_ready", _samples(_ready)),
)
"""Every scrape-time family, in exposition order, with the one place that builds it."""

_SCRAPED = frozenset(name for name, _ in _BUILDERS)


class _Histogram:
    """Bucket counts (not cumulative; the last bucket is +Inf) and the sum of observations."""

    __slots__ = ("counts", "sum")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * buckets
        self.sum = 0.0


class PrometheusMetrics:
    """The service's metrics; implements :class:`application.ports.ProcessingObserver`.

    ``sources`` may also be given (or completed) after construction by assigning fields of
    :attr:`sources`; ``clock`` is wall time in epoch seconds (for the consumer lag).
    """

    def __init__(
        self,
        sources: ScrapeSources | None = None,
        *,
        clock: Callable[[], float] = time.time,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.sources = sources if sources is not None else ScrapeSources()
        self._clock = clock
        self.last_ready: bool | None = None
        self._lag_seconds: float | None = None
        self.scrape_errors = 0

        # The latency histograms are plain bucket counts (a bisect and two increments per
        # evaluation, no lock: everything runs on the event loop), exported by the scrape
        # collector; prometheus_client objects cost about four times as much on the hot path.
        self.latency_bounds: tuple[float, ...] = LATENCY_BOUNDS
        self.latency_histograms: dict[str, _Histogram] = {}
        self.processing_histogram = _Histogram(len(PROCESSING_BOUNDS))
        self._confidence = Histogram(
            f"{PREFIX}_signal_confidence",
            _INFO[f"{PREFIX}_signal_confidence"].help,
            ["strategy"],
            buckets=CONFIDENCE_BUCKETS,
            registry=self.registry,
        )
        # label children cached per label values: the hot path is one dict lookup
        self._confidence_children: dict[str, Histogram] = {}
        self._outcomes = Counter(
            f"{PREFIX}_signal_outcomes_total",
            _INFO[f"{PREFIX}_signal_outcomes_total"].help,
            ["strategy", "horizon", "config_version", "result"],
            registry=self.registry,
        )
        self._outcome_bps = Histogram(
            f"{PREFIX}_signal_outcome_net_bps",
            _INFO[f"{PREFIX}_signal_outcome_net_bps"].help,
            ["strategy", "horizon"],
            buckets=OUTCOME_BPS_BUCKETS,
            registry=self.registry,
        )
        self._outcome_bps_sum = Gauge(
            f"{PREFIX}_signal_outcome_net_bps_cumulative",
            _INFO[f"{PREFIX}_signal_outcome_net_bps_cumulative"].help,
            ["strategy", "horizon"],
            registry=self.registry,
        )
        self.registry.register(_ScrapeCollector(self))

    # -- ProcessingObserver ---------------------------------------------------------------

    def strategy_evaluated(self, strategy_id: str, seconds: float) -> None:
        histogram = self.latency_histograms.get(strategy_id)
        if histogram is None:
            histogram = self.latency_histograms[strategy_id] = _Histogram(len(self.latency_bounds))
        histogram.counts[bisect_left(self.latency_bounds, seconds)] += 1
        histogram.sum += seconds

    # -- other push-style updates ---------------------------------------------------------

    def signals_emitted(self, signals: Iterable[Signal]) -> None:
        """Record the confidence of emitted signals (call with what the engine returned)."""
        for signal in signals:
            child = self._confidence_children.get(signal.strategy_id)
            if child is None:
                child = self._confidence_children[signal.strategy_id] = self._confidence.labels(
                    signal.strategy_id
                )
            child.observe(signal.confidence)

    def signal_emitted(self, signal: Signal) -> None:
        """Record one emitted signal's confidence (the run loop's ``RunObserver`` hook)."""
        self.signals_emitted((signal,))

    def outcome_scored(self, outcome: LiveOutcome) -> None:
        """Count what an outcome update adds: a horizon reached, a trade closed or unfilled
        (the application's ``OutcomeObserver``; a few per signal, off the per-message path)."""
        signal = outcome.signal
        version = str(signal.config.version)
        if outcome.change is OutcomeChange.HORIZON and outcome.changed_horizon is not None:
            result = outcome.horizons[outcome.changed_horizon]
            verdict = "hit" if result.is_hit else "miss"
            self._outcomes.labels(
                signal.strategy_id, outcome.changed_horizon, version, verdict
            ).inc()
            self._outcome_bps.labels(signal.strategy_id, outcome.changed_horizon).observe(
                result.net_bps
            )
            self._outcome_bps_sum.labels(signal.strategy_id, outcome.changed_horizon).inc(
                result.net_bps
            )
        elif outcome.change is OutcomeChange.TRADE and outcome.trade is not None:
            verdict = "win" if outcome.trade.is_win else "loss"
            self._outcomes.labels(signal.strategy_id, TRADE, version, verdict).inc()
            self._outcome_bps.labels(signal.strategy_id, TRADE).observe(outcome.trade.net_bps)
            self._outcome_bps_sum.labels(signal.strategy_id, TRADE).inc(outcome.trade.net_bps)
        elif outcome.change is OutcomeChange.UNFILLED:
            self._outcomes.labels(signal.strategy_id, TRADE, version, "unfilled").inc()

    def message_consumed(self, lag_seconds: float) -> None:
        """Per message: remember ``now − event time`` (one attribute store, no lock).

        Exported as the consumer lag unless a ``last_event_time_ms`` source is configured.
        """
        self._lag_seconds = lag_seconds

    def message_processed(self, seconds: float) -> None:
        """Per message: its processing time (a bisect and two increments, no lock)."""
        histogram = self.processing_histogram
        histogram.counts[bisect_left(PROCESSING_BOUNDS, seconds)] += 1
        histogram.sum += seconds

    def set_ready(self, ready: bool) -> None:
        """Record a readiness verdict (used when no ``ready`` source is configured)."""
        self.last_ready = ready

    def consumer_lag_seconds(self) -> float | None:
        """``now − event time`` of the last message, never negative; None if unknown."""
        source = self.sources.last_event_time_ms
        if source is None:
            lag = self._lag_seconds
            return None if lag is None or not math.isfinite(lag) else max(0.0, lag)
        event_ms = _finite(source())
        if event_ms is None:
            return None
        return max(0.0, self._clock() - event_ms / 1000.0)

    # -- exposition -----------------------------------------------------------------------

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition body and its content type (OpenMetrics if ``accept`` asks for it)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

    def exported_names(self) -> set[str]:
        """Names present in a collection right now (samples' base families, ``_total`` kept
        for counters); for tests and dashboard checks."""
        names: set[str] = set()
        for family in self.registry.collect():
            info_name = family.name + "_total" if family.type == "counter" else family.name
            names.add(info_name)
        return names
