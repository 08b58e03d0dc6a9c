"""The ``backtest`` sub-container of :class:`entrypoints.container.Container`.

In a module of its own so that ``realtime-strategies backtest`` (and its sweeps) build their
objects without importing the service stack (FastAPI, NATS, database drivers).
"""

from __future__ import annotations

from datetime import UTC, datetime

from dependency_injector import containers, providers

from adapters.memory.audit_log import InMemoryAuditLog
from adapters.memory.clock import FixedClock
from adapters.memory.config_repository import InMemoryConfigRepository
from adapters.memory.replay_feed import ReplayMarketFeed
from adapters.memory.unit_of_work import InMemoryConfigUnitOfWork
from adapters.wire.binance import BinanceDecoder
from adapters.wire.capture import CaptureLineDecoder, RecordedDecoders
from adapters.wire.market_inputs import MarketInputDecoder
from adapters.wire.stats import DecodeStats
from application.config_admin import ConfigAdmin
from application.config_cache import EffectiveConfigCache
from domain.engine import SignalEngine
from domain.governance import Governance, GovernanceParams
from domain.metrics import MarketMetricsBook
from domain.strategies.registry import STRATEGY_PARAMS, build_strategies
from domain.trade_model import TradeModelSettings, TradeSimulator

BACKTEST_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
"""The audit trail of a backtest is stamped with a fixed time: output depends on input only."""


class BacktestParts(containers.DeclarativeContainer):
    """``backtest``: configuration in memory (audit stamped with a fixed time, no
    environment layer), captures replayed as fast as they decode (``feed(path)``; either
    capture format), no observer, the trade model of ``trade_model``, the governance limits
    of ``governance_limits``."""

    symbols: providers.Provider[frozenset[str] | None] = providers.Object(None)
    home_venue = providers.Object("binance")
    trade_model = providers.Object(TradeModelSettings())
    governance_limits = providers.Object(GovernanceParams())

    decode_stats = providers.Singleton(DecodeStats)
    config_repository = providers.Singleton(InMemoryConfigRepository)
    audit_log = providers.Singleton(InMemoryAuditLog)
    clock = providers.Singleton(FixedClock, BACKTEST_EPOCH)
    config_cache = providers.Singleton(
        EffectiveConfigCache, STRATEGY_PARAMS, config_repository, clock
    )
    config_admin = providers.Singleton(
        ConfigAdmin,
        config_cache,
        providers.Singleton(InMemoryConfigUnitOfWork, config_repository, audit_log),
        audit_log,
        clock,
    )
    binance_decoder = providers.Singleton(BinanceDecoder, symbols=symbols)
    decoder = providers.Singleton(
        CaptureLineDecoder,
        binance_decoder,
        providers.Singleton(MarketInputDecoder, symbols=symbols),
        # A recording's messages are judged at their receive time, as the service judged them.
        providers.Singleton(RecordedDecoders, symbols),
    )
    feed = providers.Factory(ReplayMarketFeed, decoder=decoder, stats=decode_stats)
    metrics_book = providers.Singleton(MarketMetricsBook)
    governance = providers.Singleton(Governance, governance_limits)
    engine = providers.Singleton(
        SignalEngine,
        providers.Callable(build_strategies, home_venue),
        config_cache.provided.effective,
        depth_observer=metrics_book,
        governance=governance,
    )
    simulator = providers.Factory(TradeSimulator, trade_model)
