"""On-chain metrics: trade ``<ASSET>USDT`` on whale transfers and net exchange flows."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from domain.market import (
    DepthSnapshot,
    ExchangeFlow,
    FlowDirection,
    MarketEvent,
    Ticker,
    Trade,
    WhaleTransfer,
)
from domain.params import CommonParams, param
from domain.signal import Action, JsonValue
from domain.state import mapping, row
from domain.strategies.base import Decision, Owns

QUOTE_ASSET = "USDT"
"""Signals are on ``<asset>USDT``; prices are learnt from the market-data events of those."""

MAX_PRICED_SYMBOLS = 10_000
"""Bound of symbols whose latest price is kept; symbols beyond it are not priced."""

_MIN_CONFIDENCE = 0.5
_MAX_CONFIDENCE = 0.95
# Tuples, not unions built on every call: config_symbol runs for every market event.
_PRICE_EVENTS = (Trade, Ticker, DepthSnapshot)
_ONCHAIN_EVENTS = (WhaleTransfer, ExchangeFlow)


@dataclass(frozen=True, slots=True)
class OnchainMetricsParams(CommonParams):
    """Parameters of :class:`OnchainMetricsStrategy`."""

    strategy_id: ClassVar[str] = "onchain_metrics"

    whale_threshold_btc: float = param(
        100.0,
        min=10.0,
        max=1000.0,
        description=(
            "Smallest BTC transfer to or from an exchange that signals; ten times it gives "
            "the maximum confidence."
        ),
    )
    whale_threshold_eth: float = param(
        1000.0,
        min=100.0,
        max=10000.0,
        description=(
            "Smallest ETH transfer to or from an exchange that signals; ten times it gives "
            "the maximum confidence."
        ),
    )
    exchange_flow_threshold_percent: float = param(
        10.0,
        min=5.0,
        max=50.0,
        description=(
            "Net exchange flow share |inflow - outflow| / (inflow + outflow) in percent above "
            "which a flow signals: sell on net inflow, buy on net outflow."
        ),
    )
    min_signal_interval: int = param(
        3600,
        min=1800,
        max=86400,
        description="Minimum seconds (event time) between two equal signals on one symbol.",
    )
    cooldown_seconds: int = param(
        0,
        min=0,
        max=86400,
        description=(
            "Extra cooldown; the effective cooldown is max(cooldown_seconds, min_signal_interval)."
        ),
    )


def _confidence(excess: float) -> float:
    """0.5 at the threshold, rising linearly with ``excess`` (0..1) to 0.95."""
    if not excess > 0.0:  # also NaN
        return _MIN_CONFIDENCE
    return _MIN_CONFIDENCE + (_MAX_CONFIDENCE - _MIN_CONFIDENCE) * min(1.0, excess)


class OnchainMetricsStrategy:
    """Buy or sell ``<asset>USDT`` on exchange-bound on-chain activity.

    Business rules (config of ``<asset>USDT``):

    * Whale transfer of BTC (``whale_threshold_btc``) or ETH (``whale_threshold_eth``) with
      amount at or above the threshold: into an exchange (``to_exchange``, coins about to be
      sold) → **sell**; out of one (``from_exchange``, coins withdrawn to hold) → **buy**.
      Other assets have no threshold and never signal. Confidence = 0.5 + 0.45 ×
      min(1, log10(amount / threshold)): 0.5 at the threshold, 0.95 at ten times it.
    * Exchange flow of any asset: net = inflow - outflow, share = |net| / (inflow + outflow)
      × 100. share > ``exchange_flow_threshold_percent`` → **sell** on net inflow, **buy** on
      net outflow. Confidence = 0.5 + 0.45 × (share - threshold) / (100 - threshold).
    * A signal needs the symbol's price, the latest (event time) of its trades (price),
      tickers (last price) or depth snapshots (mid), consumed only for that (cheap path, no
      decision). Without a known price there is no signal.

    Only real events drive it: nothing random or simulated. Memory: one price per
    ``*USDT`` symbol, at most :data:`MAX_PRICED_SYMBOLS`.
    """

    strategy_id: ClassVar[str] = OnchainMetricsParams.strategy_id
    params_type: ClassVar[type[CommonParams]] = OnchainMetricsParams
    consumes: ClassVar[tuple[type, ...]] = (*_PRICE_EVENTS, *_ONCHAIN_EVENTS)

    __slots__ = ("_prices",)

    def __init__(self) -> None:
        self._prices: dict[str, tuple[int, float]] = {}

    def price(self, symbol: str) -> float | None:
        """The latest known price of ``symbol`` (None until one was seen)."""
        known = self._prices.get(symbol)
        return known[1] if known is not None else None

    def to_state(self, owns: Owns) -> dict[str, object]:
        """The latest (event time, price) of the symbols ``owns`` accepts."""
        return {
            "prices": {symbol: [t, p] for symbol, (t, p) in self._prices.items() if owns(symbol)}
        }

    def merge_state(self, state: Mapping[str, object]) -> None:
        """Restore what :meth:`to_state` returned, keeping the other symbols."""
        where = self.strategy_id
        loaded: dict[str, tuple[int, float]] = {}
        for symbol, known in mapping(state, "prices", where).items():
            t, p = row(known, 2, where)
            loaded[str(symbol)] = (int(t), float(p))
        for symbol, known in loaded.items():
            if symbol in self._prices or len(self._prices) < MAX_PRICED_SYMBOLS:
                self._prices[symbol] = known

    def config_symbol(self, event: MarketEvent) -> str | None:
        if isinstance(event, _PRICE_EVENTS):
            symbol = event.symbol
            return symbol if symbol.endswith(QUOTE_ASSET) else None
        if isinstance(event, _ONCHAIN_EVENTS):
            return event.asset + QUOTE_ASSET
        return None

    def on_event(self, event: MarketEvent, params: OnchainMetricsParams) -> Decision | None:
        # Price path first (cheap): market data only teaches the latest price.
        if isinstance(event, Trade):
            self._learn_price(event.symbol, event.event_time_ms, event.price)
        elif isinstance(event, DepthSnapshot):
            if event.bids and event.asks:
                bid = event.bids[0][0]
                mid = bid + (event.asks[0][0] - bid) / 2.0
                self._learn_price(event.symbol, event.event_time_ms, mid)
        elif isinstance(event, Ticker):
            self._learn_price(event.symbol, event.event_time_ms, event.last_price)
        elif isinstance(event, WhaleTransfer):
            return self._on_whale(event, params)
        elif isinstance(event, ExchangeFlow):
            return self._on_flow(event, params)
        return None

    def _learn_price(self, symbol: str, time_ms: int, price: float) -> None:
        prices = self._prices
        known = prices.get(symbol)
        if known is None:
            if len(prices) >= MAX_PRICED_SYMBOLS or not symbol.endswith(QUOTE_ASSET):
                return
        elif time_ms < known[0]:
            return  # out of order: keep the newer price
        prices[symbol] = (time_ms, price)

    def _on_whale(self, event: WhaleTransfer, params: OnchainMetricsParams) -> Decision | None:
        if event.asset == "BTC":
            threshold = params.whale_threshold_btc
        elif event.asset == "ETH":
            threshold = params.whale_threshold_eth
        else:
            return None
        amount = event.amount
        if not (threshold > 0.0 and amount >= threshold):
            return None
        symbol = event.asset + QUOTE_ASSET
        price = self.price(symbol)
        if price is None:
            return None
        action = Action.SELL if event.direction is FlowDirection.TO_EXCHANGE else Action.BUY
        ratio = amount / threshold
        metadata: dict[str, JsonValue] = {
            "event_type": "whale_transfer",
            "asset": event.asset,
            "amount": amount,
            "direction": event.direction.value,
            "threshold": threshold,
            "threshold_multiple": ratio,
        }
        return Decision(
            symbol=symbol,
            action=action,
            confidence=_confidence(math.log10(ratio)),
            price=price,
            current_price=price,
            indicators={"whale_amount": amount, "whale_threshold": threshold},
            metadata=metadata,
        )

    def _on_flow(self, event: ExchangeFlow, params: OnchainMetricsParams) -> Decision | None:
        inflow, outflow = event.inflow, event.outflow
        total = inflow + outflow
        if not total > 0.0:
            return None
        net = inflow - outflow
        share = abs(net) / total * 100.0
        threshold = params.exchange_flow_threshold_percent
        if not share > threshold or net == 0.0:
            return None
        symbol = event.asset + QUOTE_ASSET
        price = self.price(symbol)
        if price is None:
            return None
        action = Action.SELL if net > 0.0 else Action.BUY
        headroom = 100.0 - threshold
        excess = (share - threshold) / headroom if headroom > 0.0 else 1.0
        metadata: dict[str, JsonValue] = {
            "event_type": "exchange_flow",
            "asset": event.asset,
            "inflow": inflow,
            "outflow": outflow,
            "net_flow": net,
            "net_flow_share_percent": share,
            "flow_direction": "net_inflow" if net > 0.0 else "net_outflow",
            "period_seconds": event.period_seconds,
            "threshold_percent": threshold,
        }
        return Decision(
            symbol=symbol,
            action=action,
            confidence=_confidence(excess),
            price=price,
            current_price=price,
            indicators={"net_flow": net, "net_flow_share_percent": share},
            metadata=metadata,
        )
