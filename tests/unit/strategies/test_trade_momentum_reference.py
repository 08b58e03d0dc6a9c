"""trade_momentum gives bit-for-bit the results of the straightforward per-trade loop.

The strategy computes the weights with map() in C and the tick sum from directions stored
when each trade enters the window. ``reference_momentum`` below is the plain loop it
replaced (the specification, written out); every float of every proposal must be equal, on
streams with bursts in one millisecond, flat ticks, trades stamped out of order, and
configuration changes (window size, minimum quantity, decay) between trades.
"""

from __future__ import annotations

import math
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.market import Trade
from domain.strategies.trade_momentum import TradeMomentumParams, TradeMomentumStrategy

pytestmark = pytest.mark.unit

_Entry = tuple[int, float, float, float]


class ReferenceMomentum:
    """The original implementation: one Python loop over (time, price, quantity, side)."""

    def __init__(self) -> None:
        self.windows: dict[str, deque[_Entry]] = {}

    def momentum(
        self, event: Trade, params: TradeMomentumParams
    ) -> tuple[float, float, float, float, int] | None:
        min_quantity = params.min_quantity
        quantity = event.quantity
        if quantity < min_quantity:
            return None
        size = params.momentum_window
        window = self.windows.get(event.symbol)
        if window is None or window.maxlen != size:
            window = deque(window or (), maxlen=size)
            self.windows[event.symbol] = window
        now = event.event_time_ms
        window.append((now, event.price, quantity, -1.0 if event.is_buyer_maker else 1.0))
        if len(window) < size:
            return None
        decay_ms = params.time_decay_seconds * 1000.0
        inv_decay = 1.0 / decay_ms if decay_ms > 0.0 else math.inf
        count = 0
        w_sum = signed_count = q_sum = signed_q = pair_w = tick = 0.0
        prev_price = -1.0
        for t, p, q, side in window:
            if q < min_quantity:
                continue
            count += 1
            age = now - t
            w = math.exp(-age * inv_decay) if age > 0 else 1.0
            w_sum += w
            signed_count += w * side
            wq = w * q
            q_sum += wq
            signed_q += wq * side
            if prev_price > 0.0:
                pair_w += w
                if p > prev_price:
                    tick += w
                elif p < prev_price:
                    tick -= w
            prev_price = p
        if count < size:
            return None
        tick_score = tick / pair_w if pair_w > 0.0 else 0.0
        volume_score = signed_q / q_sum if 0.0 < q_sum < math.inf else 0.0
        count_score = signed_count / w_sum if w_sum > 0.0 else 0.0
        wp, wv, wc = params.price_weight, params.quantity_weight, params.maker_weight
        momentum = (wp * tick_score + wv * volume_score + wc * count_score) / (wp + wv + wc)
        return momentum, tick_score, volume_score, count_score, count


def signature(value: float) -> str:
    """Bit-exact comparison (also tells 0.0 from -0.0)."""
    return value.hex()


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
def test_same_momentum_as_the_reference_loop(
    trades: list[tuple[float, float, bool, int, int]], configs: list[TradeMomentumParams]
) -> None:
    strategy = TradeMomentumStrategy()
    reference = ReferenceMomentum()
    t = 1_723_161_600_000
    for i, (price, quantity, maker, step, config_index) in enumerate(trades):
        t = max(0, t + step)
        event = Trade("BTCUSDT", t, i, price, quantity, maker)
        params = configs[config_index]
        expected = reference.momentum(event, params)
        proposal = strategy.propose(event, params)
        assert not isinstance(proposal, str)  # no hysteresis
        if proposal is None:
            assert expected is None or not (
                expected[0] > params.buy_threshold or expected[0] < params.sell_threshold
            )
            continue
        assert expected is not None
        momentum, tick_score, volume_score, count_score, count = expected
        assert signature(proposal.momentum) == signature(momentum)
        assert signature(proposal.tick_score) == signature(tick_score)
        assert signature(proposal.volume_score) == signature(volume_score)
        assert signature(proposal.count_score) == signature(count_score)
        assert proposal.window_trades == count


def test_every_trade_decides_like_the_reference_on_a_long_stream() -> None:
    """Also the None answers: momentum inside the thresholds gives no proposal either way."""
    strategy = TradeMomentumStrategy()
    reference = ReferenceMomentum()
    params = TradeMomentumParams(
        hysteresis=False, momentum_window=5, buy_threshold=0.3, sell_threshold=-0.3
    )
    seen = 0
    for i in range(3000):
        price = 100.0 + ((i * 7919) % 13 - 6) * 0.25
        event = Trade(
            "BTCUSDT", 1_000_000 + i * 37 - (i % 5) * 11, i, price, 0.01 + i % 3, i % 2 == 0
        )
        expected = reference.momentum(event, params)
        proposal = strategy.propose(event, params)
        assert not isinstance(proposal, str)  # no hysteresis
        if expected is not None and (expected[0] > 0.3 or expected[0] < -0.3):
            assert proposal is not None
            assert signature(proposal.momentum) == signature(expected[0])
            seen += 1
        else:
            assert proposal is None
    assert seen > 100
