"""Proposing strategies: checking the cooldown before building the decision changes nothing.

The engine asks a ``ProposingStrategy`` for a proposal (symbol and action), checks the
cooldown, and builds the decision only when it passes. These tests run the same event
streams through an engine that sees the proposals and one that only sees ``on_event`` (the
strategy hidden behind a plain wrapper), and require identical outcomes and signals (each
evaluation's result, as an :class:`~domain.engine.Instrument` sees it).
"""

from __future__ import annotations

from typing import ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.config import EffectiveConfig
from domain.engine import Evaluation, Result, SignalEngine
from domain.governance import Governance, GovernanceParams
from domain.market import DepthSnapshot, MarketEvent, Trade
from domain.params import CommonParams
from domain.strategies.base import Decision, Held, Strategy
from domain.strategies.orderbook_skew import OrderbookSkewParams, OrderbookSkewStrategy
from domain.strategies.trade_momentum import TradeMomentumParams, TradeMomentumStrategy

pytestmark = pytest.mark.unit

T0 = 1_723_161_600_000


class OnEventOnly:
    """Hides ``propose``: the engine must decide first and ask the cooldown after."""

    strategy_id: ClassVar[str] = ""
    params_type: ClassVar[type[CommonParams]] = CommonParams

    def __init__(self, inner: Strategy[CommonParams]) -> None:
        self.inner = inner
        self.strategy_id = inner.strategy_id  # type: ignore[misc]

    def config_symbol(self, event: MarketEvent) -> str | None:
        return self.inner.config_symbol(event)

    def on_event(self, event: MarketEvent, params: CommonParams) -> Decision | Held | None:
        return self.inner.on_event(event, params)


def run(
    strategy: Strategy[CommonParams], events: list[MarketEvent], params: CommonParams
) -> list[Result]:
    """The result of every evaluation of ``strategy`` over ``events``, in order."""
    results: list[Result] = []

    def record(strategy_id: str, evaluation: Evaluation) -> Evaluation:
        def recorded(event: MarketEvent, symbol: str) -> Result:
            result = evaluation(event, symbol)
            results.append(result)
            return result

        return recorded

    config = EffectiveConfig(strategy.strategy_id, "BTCUSDT", params, 3, "db", False)
    engine = SignalEngine(
        [strategy],
        lambda _id, _symbol: config,
        instrument=record,
        governance=Governance(GovernanceParams(0, 0)),
    )
    for event in events:
        engine.process(event)
    assert len(results) == len(events)
    return results


def both_ways(
    strategy_type: type[Strategy[CommonParams]], events: list[MarketEvent], params: CommonParams
) -> tuple[list[Result], list[Result]]:
    proposing = run(strategy_type(), events, params)
    deciding = run(OnEventOnly(strategy_type()), events, params)
    return proposing, deciding


quantities = st.lists(st.floats(0.0001, 3.0), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(
    books=st.lists(
        st.tuples(quantities, quantities, st.integers(0, 20_000)), min_size=1, max_size=60
    ),
    cooldown=st.sampled_from([0, 1, 5, 30]),
)
def test_orderbook_skew_same_outcomes_and_signals(
    books: list[tuple[list[float], list[float], int]], cooldown: int
) -> None:
    events: list[MarketEvent] = []
    t = T0
    for bid_qty, ask_qty, step in books:
        t += step
        bids = tuple((100.0 - i * 0.01, q) for i, q in enumerate(bid_qty))
        asks = tuple((100.01 + i * 0.01, q) for i, q in enumerate(ask_qty))
        events.append(DepthSnapshot("BTCUSDT", t, bids, asks))
    params = OrderbookSkewParams(
        hysteresis=False, cooldown_seconds=cooldown, min_spread_percent=1.0
    )
    proposed, decided = both_ways(OrderbookSkewStrategy, events, params)  # type: ignore[arg-type]
    assert proposed == decided


@settings(max_examples=60, deadline=None)
@given(
    trades=st.lists(
        st.tuples(
            st.floats(99.0, 101.0), st.floats(0.0005, 2.0), st.booleans(), st.integers(0, 3000)
        ),
        min_size=1,
        max_size=120,
    ),
    cooldown=st.sampled_from([0, 1, 5, 30]),
)
def test_trade_momentum_same_outcomes_and_signals(
    trades: list[tuple[float, float, bool, int]], cooldown: int
) -> None:
    events: list[MarketEvent] = []
    t = T0
    for i, (price, qty, maker, step) in enumerate(trades):
        t += step
        events.append(Trade("BTCUSDT", t, i, price, qty, maker))
    params = TradeMomentumParams(
        cooldown_seconds=cooldown, momentum_window=5, buy_threshold=0.3, sell_threshold=-0.3
    )
    proposed, decided = both_ways(TradeMomentumStrategy, events, params)  # type: ignore[arg-type]
    assert proposed == decided


def test_a_run_of_one_sided_books_is_mostly_suppressed_before_deciding() -> None:
    """The case the proposal exists for: a steady heavy bid side, a signal per cooldown."""
    events: list[MarketEvent] = [
        DepthSnapshot("BTCUSDT", T0 + i * 100, ((100.0, 5.0),), ((100.01, 1.0),))
        for i in range(1000)
    ]
    proposed, decided = both_ways(
        OrderbookSkewStrategy,  # type: ignore[arg-type]
        events,
        OrderbookSkewParams(hysteresis=False, cooldown_seconds=30, min_confidence=0.0),
    )
    assert proposed == decided
    assert [outcome for outcome, _ in proposed].count("signal") == 4  # t = 0, 30, 60, 90 s


def test_on_event_is_the_decided_proposal() -> None:
    strategy = OrderbookSkewStrategy()
    snapshot = DepthSnapshot("BTCUSDT", T0, ((100.0, 5.0),), ((100.01, 1.0),))
    params = OrderbookSkewParams(hysteresis=False)
    proposal = strategy.propose(snapshot, params)
    assert not isinstance(proposal, str)  # no hysteresis
    assert proposal is not None
    decision = proposal.decide()
    assert (decision.symbol, decision.action) == (proposal.symbol, proposal.action)
    assert strategy.on_event(snapshot, params) == decision
