"""The composition root: every way of running is built by the one container, from settings.

Nothing is connected or started here: building objects does not touch NATS or a store.
"""

from __future__ import annotations

import orjson
import pytest
from dependency_injector import providers

from adapters.console import ConsoleSignalSink
from adapters.memory.replay_feed import ReplayMarketFeed
from adapters.nats.market_feed import NatsMarketFeed
from adapters.nats.partition_feed import JetStreamPartitionFeed, ReplayGate
from adapters.nats.partition_router import NatsPartitionRouter
from adapters.nats.signal_budget import STATS, NatsSignalBudget
from adapters.nats.signal_sink import NatsSignalSink
from adapters.wire.stats import Decoded, Skip, SkipReason
from application.live_signals import BroadcastingSignalSink
from application.runtime import ServiceRuntime
from bench.market_inputs import dominance, venue_quote, whale_transfer
from domain.governance import Suppression
from domain.signal import Action
from entrypoints.container import Mode, ReplayOptions, build_container
from entrypoints.partition_settings import PartitionSettings
from entrypoints.service import service_process
from entrypoints.settings import Settings
from tests.data import CAPTURE
from tests.unit.test_config_use_cases import ManualClock

T_MS = 1_723_161_255_343


def quote(symbol: str) -> bytes:
    return venue_quote(symbol, 1.0, 2.0, T_MS)


def whale(asset: str) -> bytes:
    return whale_transfer(asset, 5_000, "from_exchange", T_MS)


def trade(symbol: str) -> bytes:
    return orjson.dumps(
        {
            "stream": f"{symbol.lower()}@trade",
            "data": {
                "e": "trade",
                "E": T_MS,
                "s": symbol,
                "t": 1,
                "p": "100.0",
                "q": "1.0",
                "T": T_MS,
                "m": True,
            },
        }
    )


DOMINANCE = dominance(56.2, T_MS)


def eth_only() -> Settings:
    return Settings(trading_symbols="ETHUSDT", config_store="memory")


def test_trading_symbols_filter_every_input_of_the_service_feed() -> None:
    """TRADING_SYMBOLS=ETHUSDT: a BTCUSDT quote, trade or on-chain event is skipped as
    unknown_symbol on every subject (the quotes subject used to decode it); dominance is
    market-wide."""
    settings = eth_only()
    feed = build_container(settings).market_feed()
    assert isinstance(feed, NatsMarketFeed)
    decoders = feed.decoders
    cases = [
        (settings.nats_consumer_topic, trade("BTCUSDT"), trade("ETHUSDT")),
        (settings.nats_quotes_topic, quote("BTCUSDT"), quote("ETHUSDT")),
        (settings.nats_onchain_topic, whale("btc"), whale("eth")),
    ]
    for subject, other, traded in cases:
        skipped = decoders[subject](other)
        assert isinstance(skipped, Skip), subject
        assert skipped.reason == SkipReason.UNKNOWN_SYMBOL
        assert isinstance(decoders[subject](traded), Decoded), subject
    assert isinstance(decoders[settings.nats_dominance_topic](DOMINANCE), Decoded)


def test_a_worker_decodes_with_the_same_allow_list() -> None:
    container = build_container(
        eth_only(), mode=Mode.WORKER, partitions=PartitionSettings(worker_count=1)
    )
    feed = container.market_feed()
    assert isinstance(feed, JetStreamPartitionFeed)
    for kind, other, traded in [
        ("trade", trade("BTCUSDT"), trade("ETHUSDT")),
        ("quotes", quote("BTCUSDT"), quote("ETHUSDT")),
        ("onchain", whale("btc"), whale("eth")),
    ]:
        assert isinstance(feed.decoders[kind](other), Skip), kind
        assert isinstance(feed.decoders[kind](traded), Decoded), kind


def test_each_way_of_running_gets_its_own_parts() -> None:
    settings = Settings(config_store="memory")
    service = build_container(settings)
    runtime = service.runtime()
    assert isinstance(runtime, ServiceRuntime)
    assert isinstance(runtime.feed, NatsMarketFeed)
    assert isinstance(runtime.sink, BroadcastingSignalSink)
    assert isinstance(runtime.sink.inner, NatsSignalSink)
    assert runtime.gate is None
    assert runtime.budget is None  # one process keeps its per-minute cap exactly on its own

    worker = build_container(
        settings, mode=Mode.WORKER, partitions=PartitionSettings(worker_count=1)
    )
    runtime = worker.runtime()
    assert isinstance(runtime.feed, JetStreamPartitionFeed)
    assert isinstance(runtime.gate, ReplayGate)
    assert runtime.gate.feed is runtime.feed
    assert isinstance(runtime.budget, NatsSignalBudget)
    assert runtime.budget.bucket == "signal_budget"
    assert runtime.heartbeat()["signal_budget"] == dict.fromkeys(STATS, 0)
    assert "/api/v1/partitions" in worker.api().openapi()["paths"]
    alone = build_container(
        settings,
        mode=Mode.WORKER,
        partitions=PartitionSettings(worker_count=1, signal_budget_bucket=""),
    ).runtime()
    assert alone.budget is None
    assert "signal_budget" not in alone.heartbeat()

    local = build_container(settings, mode=Mode.LOCAL, replay=ReplayOptions(CAPTURE))
    runtime = local.runtime()
    assert isinstance(runtime.feed, ReplayMarketFeed)
    assert isinstance(runtime.sink, BroadcastingSignalSink)
    assert isinstance(runtime.sink.inner, ConsoleSignalSink)
    assert local.config_notifier() is None

    router = build_container(settings, partitions=PartitionSettings()).router
    assert isinstance(router.router(), NatsPartitionRouter)
    assert router.router().stream is not None


def test_metrics_read_the_live_counters() -> None:
    container = build_container(Settings(config_store="memory", trading_symbols="BTCUSDT"))
    feed = container.market_feed()
    assert isinstance(feed, NatsMarketFeed)
    engine = container.engine()
    container.decode_stats().record(feed.decoders["binance.websocket.data"](b"{"))
    decoder = feed.decoders["binance.websocket.data"]
    container.decode_stats().record(decoder(trade("XRPUSDT")))  # a by-design skip in effect
    container.runtime().counters.consumer_errors += 1  # an event whose processing raised
    body, _ = container.prometheus().render()
    assert b'realtime_strategies_messages_invalid_total{reason="malformed_json"} 1.0' in body
    assert b"realtime_strategies_nats_connected 0.0" in body
    # the reference's error counter: the malformed message and the failed one, not the skip
    assert b'realtime_strategies_messages_invalid_total{reason="unknown_symbol"} 1.0' in body
    assert b"realtime_strategies_messages_errors_total 2.0" in body
    assert engine.stats.events == 0


def test_a_worker_without_an_index_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTNAME", "not-a-statefulset-pod")
    container = build_container(
        Settings(config_store="memory"),
        mode=Mode.WORKER,
        partitions=PartitionSettings(worker_count=2),
    )
    with pytest.raises(ValueError, match="HOSTNAME"):
        container.worker.index()


def test_a_worker_with_a_signal_stream_publishes_signals_with_acks() -> None:
    settings = Settings(config_store="memory")
    assert not build_container(settings).nats_sink().use_jetstream
    plain = PartitionSettings(worker_count=1)
    with_stream = PartitionSettings(worker_count=1, signal_stream="SIGNALS")
    assert (
        not build_container(settings, mode=Mode.WORKER, partitions=plain).nats_sink().use_jetstream
    )
    worker = build_container(settings, mode=Mode.WORKER, partitions=with_stream)
    sink = worker.nats_sink()
    assert sink.use_jetstream
    assert sink.jetstream_timeout == settings.nats_signal_ack_timeout_seconds
    asked = Settings(config_store="memory", nats_signal_jetstream=True)
    assert build_container(asked).nats_sink().use_jetstream


async def test_the_governance_gate_runs_on_the_limits_in_force() -> None:
    # MAX_SIGNALS_PER_MINUTE is the environment layer of the `governance` configuration; a
    # change through the admin use cases is what the service's gate applies from then on.
    container = build_container(Settings(config_store="memory", max_signals_per_minute=5))
    cache = container.config_cache()
    await cache.refresh()
    governance = container.engine().governance
    assert cache.effective("governance", None).source == "environment"
    assert cache.governance_limits("BTCUSDT").max_signals_per_minute == 5
    for second in range(5):
        assert governance.admit("s", f"SYM{second}", Action.BUY, second * 1000, None) is None
    assert governance.admit("s", "SYM9", Action.BUY, 5_000, None) == Suppression.RATE_CAP

    await container.config_admin().set_config(
        "governance", None, {"max_signals_per_minute": 6}, changed_by="ops", reason="more"
    )
    assert governance.admit("s", "SYM9", Action.BUY, 5_000, None) is None
    await container.config_admin().set_config(
        "governance", "SYM9", {"max_signals_per_symbol_per_hour": 1}, changed_by="ops", reason="1"
    )
    assert governance.admit("s", "SYM9", Action.SELL, 70_000, None) == Suppression.RATE_CAP
    assert governance.admit("s", "SYM8", Action.SELL, 70_000, None) is None


def test_liveness_uptime_counts_from_the_service_s_start() -> None:
    """``/healthz`` reported the seconds since its first request (the health reporter was
    built then), not since the service started."""
    clock = ManualClock()
    container = build_container(
        Settings(config_store="memory"), mode=Mode.LOCAL, replay=ReplayOptions(CAPTURE)
    )
    container.clock.override(providers.Object(clock))
    service_process(container)
    clock.advance(42.0)
    assert container.health().liveness()["uptime_seconds"] == 42.0
