"""trade_momentum against an independent model of its rules, trade by trade.

``SpecMomentum`` keeps each symbol's window as a plain list, as the strategy's docstring
states the rules (a trade below ``min_quantity`` is ignored; the others enter the last
``momentum_window`` trades; a smaller window forgets the older ones; nothing is decided until
the window holds ``momentum_window`` trades that all still qualify), and scores it with the
SPEC formula of ``test_trade_momentum`` (lists, divisions by the decay time), not with the
strategy's single accumulating loop. Every decision must agree to rounding, and so must the
trades that give none, on streams with bursts in one millisecond, flat ticks, trades stamped
out of order, and configuration changes (window size, minimum quantity, decay) between trades.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.market import Trade
from domain.strategies.trade_momentum import TradeMomentumParams, TradeMomentumStrategy
from tests.unit.strategies.test_trade_momentum import Scores, reference_scores

pytestmark = pytest.mark.unit


class SpecMomentum:
    """The window rules over plain lists, scored by :func:`reference_scores`."""

    def __init__(self) -> None:
        self.windows: dict[str, list[Trade]] = {}

    def scores(self, event: Trade, params: TradeMomentumParams) -> Scores | None:
        """The scores of ``event``'s window after it, None while there is no full window."""
        if event.quantity < params.min_quantity:
            return None
        size = params.momentum_window
        window = [*self.windows.get(event.symbol, []), event][-size:]
        self.windows[event.symbol] = window
        if len(window) < size or any(t.quantity < params.min_quantity for t in window):
            return None
        return reference_scores(window, params)


def check(
    strategy: TradeMomentumStrategy, spec: SpecMomentum, event: Trade, params: TradeMomentumParams
) -> bool:
    """Offer ``event`` to both; the strategy must decide what the spec's scores call for: a
    decision with the same scores (to rounding) when the momentum is past a threshold, none
    when it is not (a momentum within rounding of a threshold may go either way). Whether
    the spec called for a decision."""
    expected = spec.scores(event, params)
    decision = strategy.on_event(event, params)
    assert not isinstance(decision, str)  # no hysteresis
    if expected is None:
        assert decision is None
        return False
    momentum = expected.momentum
    if min(abs(momentum - params.buy_threshold), abs(momentum - params.sell_threshold)) < 1e-9:
        return False
    if not (momentum > params.buy_threshold or momentum < params.sell_threshold):
        assert decision is None
        return False
    assert decision is not None
    indicators = decision.indicators
    assert [indicators[name] for name in Scores._fields] == pytest.approx(
        list(expected), rel=1e-9, abs=1e-12
    )
    assert indicators["window_trades"] == params.momentum_window
    return True


params_strategy = st.builds(
    TradeMomentumParams,
    hysteresis=st.just(False),
    momentum_window=st.sampled_from([5, 6, 10]),
    min_quantity=st.sampled_from([0.0001, 0.001, 0.5]),
    time_decay_seconds=st.sampled_from([60, 300, 600]),
    buy_threshold=st.just(0.3),
    sell_threshold=st.just(-0.3),
)


@settings(max_examples=300, deadline=None)
@given(
    trades=st.lists(
        st.tuples(
            st.sampled_from([99.5, 100.0, 100.0, 100.5, 101.25]),
            st.sampled_from([0.0002, 0.002, 0.3, 0.7, 1.5]),
            st.booleans(),
            st.sampled_from([0, 0, 0, 1, 250, 40_000, -30, -5_000]),
            st.integers(0, 2),
        ),
        min_size=1,
        max_size=150,
    ),
    configs=st.lists(params_strategy, min_size=3, max_size=3),
)
def test_same_momentum_as_the_spec_on_any_stream(
    trades: list[tuple[float, float, bool, int, int]], configs: list[TradeMomentumParams]
) -> None:
    strategy = TradeMomentumStrategy()
    spec = SpecMomentum()
    t = 1_723_161_600_000
    for i, (price, quantity, maker, step, config_index) in enumerate(trades):
        t = max(0, t + step)
        event = Trade("BTCUSDT", t, i, price, quantity, maker)
        check(strategy, spec, event, configs[config_index])


def test_every_trade_decides_like_the_spec_on_a_long_stream() -> None:
    """Also the None answers: momentum inside the thresholds gives no decision either way."""
    strategy = TradeMomentumStrategy()
    spec = SpecMomentum()
    params = TradeMomentumParams(
        hysteresis=False, momentum_window=5, buy_threshold=0.3, sell_threshold=-0.3
    )
    seen = 0
    for i in range(3000):
        price = 100.0 + ((i * 7919) % 13 - 6) * 0.25
        event = Trade(
            "BTCUSDT", 1_000_000 + i * 37 - (i % 5) * 11, i, price, 0.01 + i % 3, i % 2 == 0
        )
        seen += check(strategy, spec, event, params)
    assert seen > 100
