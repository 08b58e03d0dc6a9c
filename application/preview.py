"""Use case: what-if preview of a configuration change on the market data just seen.

``POST .../config/preview`` (and ``.../config/{symbol}/preview``) takes the body of a config
change. :meth:`ConfigPreview.preview`:

1. validates the candidate exactly as a real change does — it *is* the real change's code
   path, run as a dry run (``set_config(..., validate_only=True)``): the same 404/422, and
   nothing is written, audited or broadcast;
2. replays the events of :class:`~domain.market_window.MarketWindow` (the last
   ``PREVIEW_WINDOW_SECONDS`` per symbol: the symbol's, or every kept symbol's for a global
   change) through two fresh engines of the strategy — the current effective configuration
   and the candidate — each with its own governance gate (the rate caps in force: the
   ``governance`` runtime config per symbol; the strategies' cooldowns, hysteresis and
   confidence floors come with each side's config)
   and its own trade simulator (the backtest's trade model), in a
   worker process at a lower CPU priority (a thread would share the interpreter lock with
   the run loop: ``bench/preview_latency.py`` measured seconds of ingest latency under
   load), bounded by ``timeout_seconds`` (checked every 500 events; the replay stops when
   it is exceeded). The events are packed for the worker in chunks, yielding to the run
   loop in between;
3. returns both side by side: signals, counts by action, the signals governance (or a
   strategy's hysteresis) suppressed, by reason — the backtest's own count,
   :attr:`~application.backtest.BacktestResult.suppressed` — and the trade P&L after costs.

Nothing is stored and nothing is published: the engines are private to the preview, and
their signals go nowhere but the response. One preview runs at a time per process (a second
one meanwhile is refused with :class:`PreviewBusyError`, HTTP 429): previews are costly, and
they share the process with the ingest path.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import os
import pickle
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from application.backtest import pnl_dict, run_backtest
from application.config_admin import ConfigAdmin, ConfigView
from application.config_cache import EffectiveConfigCache
from domain.config import EffectiveConfig
from domain.engine import SignalEngine
from domain.governance import Governance, GovernanceParams
from domain.market import MarketEvent
from domain.market_window import MarketWindow
from domain.params import CommonParams, FieldError, ParamValidationError, ParamValue
from domain.signal import JsonValue, Signal
from domain.strategies.registry import build_strategies
from domain.trade_model import PnlTally, TradeModelSettings, TradeSimulator

CHECK_EVERY_EVENTS = 500
PACK_CHUNK = 1_000
MAX_SIGNALS_LISTED = 1_000
"""Signals listed per side (the counts and the P&L cover them all)."""
PREVIEW_SOURCE = "preview"


class PreviewBusyError(Exception):
    """Another preview is running in this process (HTTP 429)."""


class PreviewTimeoutError(Exception):
    """The replay did not finish within the preview's time bound (HTTP 503)."""


@dataclass(frozen=True, slots=True)
class _Side:
    """One side's figures, as plain values (cheap to send back to the service)."""

    signal_count: int
    buys: int
    signals: list[dict[str, JsonValue]]
    evaluations: dict[str, int]
    suppressed: dict[str, int]
    """Per :class:`~domain.governance.Suppression` reason (every reason, zeros included)."""
    pnl: dict[str, JsonValue]


PackedEvent = tuple[type, tuple[object, ...]]
"""A market event as its class and field values: pickled several times faster than the
frozen dataclass itself (no per-object reduce), rebuilt in the worker process."""

_FIELDS: dict[type, tuple[str, ...]] = {}


def pack_event(event: MarketEvent) -> PackedEvent:
    cls = type(event)
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(event))
    return cls, tuple(getattr(event, name) for name in names)


@dataclass(frozen=True, slots=True)
class ReplayTask:
    """What the worker process needs: picklable values only."""

    strategy_id: str
    home_venue: str
    events_path: str
    """A file of pickled chunks of :data:`PackedEvent` (written in slices by the service,
    so no single pickling holds its interpreter lock for long)."""
    event_chunks: int
    current: Mapping[str, EffectiveConfig[CommonParams]]
    candidate: Mapping[str, EffectiveConfig[CommonParams]]
    fallback: EffectiveConfig[CommonParams]
    """The current global config, for symbols outside the window (cross-symbol strategies)."""
    trade_model: TradeModelSettings
    governance_limits: Mapping[str, GovernanceParams]
    """The governance limits in force per symbol of the window (runtime configuration, read
    from the config cache when the preview starts); each side runs a gate of its own."""
    deadline_monotonic: float
    """``time.monotonic()`` (system-wide on Linux) after which the replay gives up."""


def replay(task: ReplayTask) -> tuple[_Side, _Side]:
    """Run in the preview's worker process: both sides over the same events."""
    events: list[MarketEvent] = []
    with open(task.events_path, "rb") as handle:
        for _ in range(task.event_chunks):
            chunk: list[PackedEvent] = pickle.load(handle)
            events.extend(cls(*values) for cls, values in chunk)
    return (
        _replay_side(task, events, task.current),
        _replay_side(task, events, task.candidate),
    )


def _replay_side(
    task: ReplayTask,
    events: list[MarketEvent],
    configs: Mapping[str, EffectiveConfig[CommonParams]],
) -> _Side:
    strategy = next(
        s for s in build_strategies(task.home_venue) if s.strategy_id == task.strategy_id
    )
    fallback = task.fallback

    def lookup(sid: str, symbol: str) -> EffectiveConfig[CommonParams]:
        found = configs.get(symbol)
        return found if found is not None else dataclasses.replace(fallback, symbol=symbol)

    def check(_done: int) -> None:
        if time.monotonic() > task.deadline_monotonic:
            raise PreviewTimeoutError("preview replay exceeded its time bound")

    limits = task.governance_limits
    default_limits = GovernanceParams()

    def limits_for(symbol: str) -> GovernanceParams:
        return limits.get(symbol, default_limits)

    engine = SignalEngine([strategy], lookup, governance=Governance(limits_for=limits_for))
    simulator = TradeSimulator(task.trade_model)
    result = run_backtest(
        events,
        engine,
        horizons_s=(),
        on_progress=check,
        progress_every=CHECK_EVERY_EVENTS,
        simulator=simulator,
    )
    evaluations = Counter(
        {
            outcome: count
            for (sid, outcome), count in engine.stats.outcomes.items()
            if sid == task.strategy_id
        }
    )
    pnl = pnl_dict(PnlTally().extend(result.trades).summary())
    pnl["unfilled"] = simulator.unfilled
    signals = result.signals
    return _Side(
        signal_count=len(signals),
        buys=sum(1 for signal in signals if signal.action.value == "buy"),
        signals=[signal_row(signal) for signal in signals[:MAX_SIGNALS_LISTED]],
        evaluations=dict(evaluations),
        suppressed=dict(result.suppressed),
        pnl=pnl,
    )


def _lower_priority() -> None:
    """Worker initializer: the ingest path wins every contest for a CPU."""
    with contextlib.suppress(OSError):
        os.nice(19)


@dataclass(frozen=True, slots=True)
class Span:
    """How many events a preview replays and the event time they cover."""

    count: int
    first_ms: int | None
    last_ms: int | None

    @classmethod
    def of(cls, blocks: list[list[MarketEvent]]) -> Span:
        kept = [block for block in blocks if block]
        return cls(
            count=sum(len(block) for block in kept),
            first_ms=min((block[0].event_time_ms for block in kept), default=None),
            last_ms=max((block[-1].event_time_ms for block in kept), default=None),
        )


def signal_row(signal: Signal) -> dict[str, JsonValue]:
    return {
        "signal_id": signal.signal_id,
        "symbol": signal.symbol,
        "action": signal.action.value,
        "price": signal.price,
        "confidence": signal.confidence,
        "stop_loss": signal.stop_loss,
        "take_profit": signal.take_profit,
        "event_time_ms": signal.event_time_ms,
        "config_version": signal.config.version,
    }


class ConfigPreview:
    """Dry-run a config change over the recent market data (module doc)."""

    def __init__(
        self,
        cache: EffectiveConfigCache,
        admin: ConfigAdmin,
        window: MarketWindow,
        *,
        home_venue: str = "binance",
        trade_model: TradeModelSettings | None = None,
        timeout_seconds: float = 10.0,
    ) -> None:
        self._cache = cache
        self._admin = admin
        self._window = window
        self._home_venue = home_venue
        self._trade_model = trade_model if trade_model is not None else TradeModelSettings()
        self.timeout_seconds = timeout_seconds
        self._executor: ProcessPoolExecutor | None = None
        self._running = False
        self.runs = 0
        self.refused_busy = 0
        self.timeouts = 0

    async def preview(
        self,
        strategy_id: str,
        symbol: str | None,
        patch: Mapping[str, ParamValue | None],
        changed_by: str,
        reason: str,
    ) -> dict[str, JsonValue]:
        params_type = self._cache.params_type(strategy_id)  # 404 before 429
        if not issubclass(params_type, CommonParams):  # the governance limits
            raise ParamValidationError(
                [
                    FieldError(
                        "strategy_id",
                        "not_previewable",
                        f"{strategy_id!r} is not a strategy: only strategy configs are previewed",
                    )
                ]
            )
        if self._running:
            self.refused_busy += 1
            raise PreviewBusyError("a preview is already running; retry when it is done")
        self._running = True
        try:
            dry_run = await self._admin.set_config(
                strategy_id, symbol, patch, changed_by, reason, validate_only=True
            )
            return await self._compare(strategy_id, dry_run.config, params_type)
        finally:
            self._running = False

    async def _compare(
        self, strategy_id: str, candidate: ConfigView, params_type: type[CommonParams]
    ) -> dict[str, JsonValue]:
        """Replay the window through the current and the ``candidate`` configuration (of
        ``candidate.symbol``, normalised by the write's symbol rule; None: every symbol)."""
        symbol = candidate.symbol
        symbols = [symbol] if symbol is not None else self._window.symbols()
        # One block per symbol, not merged: per-symbol strategies, cooldowns and trades are
        # independent of other symbols' events, and a merge would cost the run loop.
        blocks = [self._window.events([name]) for name in symbols]
        events = Span.of(blocks)
        current = {s: self._cache.effective(strategy_id, s) for s in symbols}
        proposed: dict[str, EffectiveConfig[CommonParams]] = {}
        for name in symbols:
            now = current[name]
            values: dict[str, ParamValue] = dict(candidate.effective)
            if symbol is None and now.is_override:  # a global change under an override
                values.update((await self._admin.get_config(strategy_id, name)).parameters)
            try:
                params = params_type.from_mapping(values)
            except ParamValidationError:  # an override already invalid: it keeps running
                proposed[name] = now
                continue
            proposed[name] = EffectiveConfig(
                strategy_id=strategy_id,
                symbol=name,
                params=params,
                version=candidate.version,
                source=PREVIEW_SOURCE,
                is_override=symbol is not None or now.is_override,
            )
        descriptor, events_path = tempfile.mkstemp(prefix="rs-preview-", suffix=".pickle")
        try:
            with os.fdopen(descriptor, "wb") as handle:
                chunks = 0
                for block in blocks:
                    for start in range(0, len(block), PACK_CHUNK):  # the run loop in between
                        pickle.dump(
                            [pack_event(event) for event in block[start : start + PACK_CHUNK]],
                            handle,
                            protocol=pickle.HIGHEST_PROTOCOL,
                        )
                        chunks += 1
                        await asyncio.sleep(0)
            return await self._run(
                strategy_id,
                symbol,
                symbols,
                events,
                current,
                proposed,
                candidate,
                events_path,
                chunks,
            )
        finally:
            with contextlib.suppress(OSError):
                os.unlink(events_path)

    async def _run(
        self,
        strategy_id: str,
        symbol: str | None,
        symbols: list[str],
        events: Span,
        current: dict[str, EffectiveConfig[CommonParams]],
        proposed: dict[str, EffectiveConfig[CommonParams]],
        candidate: ConfigView,
        events_path: str,
        chunks: int,
    ) -> dict[str, JsonValue]:
        task = ReplayTask(
            strategy_id=strategy_id,
            home_venue=self._home_venue,
            events_path=events_path,
            event_chunks=chunks,
            current=current,
            candidate=proposed,
            fallback=self._cache.effective(strategy_id, None),
            trade_model=self._trade_model,
            governance_limits={name: self._cache.governance_limits(name) for name in symbols},
            deadline_monotonic=time.monotonic() + self.timeout_seconds,
        )
        try:
            future = asyncio.wrap_future(self._pool().submit(replay, task))
            sides = await asyncio.wait_for(future, self.timeout_seconds + 2.0)
        except (PreviewTimeoutError, TimeoutError):
            self.timeouts += 1
            raise PreviewTimeoutError(
                f"the preview did not finish within {self.timeout_seconds:g} s "
                f"({events.count} events); retry with a symbol"
            ) from None
        except BrokenProcessPool:
            self._executor = None  # a new worker next time
            raise PreviewTimeoutError("the preview worker process died; retry") from None
        self.runs += 1
        return {
            "strategy_id": strategy_id,
            "symbol": symbol,
            "window": {
                "seconds": self._window.window_ms / 1000.0,
                "symbols": list(symbols),
                "events": events.count,
                "first_event_ms": events.first_ms,
                "last_event_ms": events.last_ms,
            },
            "candidate_parameters": dict(candidate.effective),
            "current": self._side_out(sides[0]),
            "candidate": self._side_out(sides[1]),
            "trade_model": dict(self._trade_model.as_dict()),
            "stored": False,
            "published": False,
        }

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_lower_priority,
            )
        return self._executor

    @staticmethod
    def _side_out(side: _Side) -> dict[str, JsonValue]:
        suppressed: dict[str, JsonValue] = dict(side.suppressed)
        evaluations: dict[str, JsonValue] = dict(side.evaluations)
        signals: list[JsonValue] = list(side.signals)
        return {
            "signal_count": side.signal_count,
            "counts": {"buy": side.buys, "sell": side.signal_count - side.buys},
            "suppressed": suppressed,
            "evaluations": evaluations,
            "pnl": side.pnl,
            "signals": signals,
            "signals_truncated": side.signal_count > len(side.signals),
        }

    async def close(self) -> None:
        """Stop the worker process (a replay in progress is abandoned)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
