"""Live scoring state snapshots (``LiveScorer.to_state``/``merge_state``, with the trade
model's and the signals' plain-data forms): a scorer restored from a snapshot, taken at any
point and sent through the checkpoint encoding, gives exactly the outcome updates of never
stopping; snapshots cut by symbol ownership merge into one scorer; a malformed snapshot is
refused with ``ValueError`` (docs/adr/0022-partition-state-checkpoints.md).

The stream is two and a half hours of event time on four symbols, so every horizon is
reached, trades close on stops, targets, reversals and timeouts, a symbol without trades
leaves its positions unfilled, and the bounds drop signals.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.live_outcomes import LiveOutcome, LiveScorer, OutcomeChange
from domain.market import DepthSnapshot, MarketEvent, Ticker, Trade
from domain.signal import Action, ConfigStamp, Signal, signal_from_state, signal_to_state
from domain.trade_model import ExitReason, FillRule, TradeModelSettings
from tests.unit.test_live_outcomes import feed

pytestmark = pytest.mark.unit

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
QUIET = "DOGEUSDT"
"""Tickers only, never a trade: its positions never fill."""
START = 1_723_161_600_000
SPAN_MS = 150 * 60_000

Item = MarketEvent | Signal


def _signal(rng: random.Random, symbol: str, t: int, price: float, n: int) -> Signal:
    action = rng.choice((Action.BUY, Action.SELL))
    d = 1.0 if action is Action.BUY else -1.0
    sl, tp = rng.uniform(0.02, 0.4) / 100, rng.uniform(0.02, 0.6) / 100
    return Signal(
        signal_id=f"{symbol}-{n}",
        strategy_id=rng.choice(("alpha", "beta")),
        symbol=symbol,
        action=action,
        confidence=rng.random(),
        price=price,
        quantity=0.5,
        current_price=price,
        stop_loss=price * (1 - d * sl),
        take_profit=price * (1 + d * tp),
        event_time_ms=t,
        config=ConfigStamp(
            n % 3, {"position_notional_usdt": 250.0, "window": 30, "strict": True}, "memory", False
        ),
        timeframe="1m",
        indicators={"velocity": rng.uniform(-1, 1), "volume": 3.0},
        metadata={"reason": "test", "levels": [1, 2.5, None], "nested": {"ok": True}},
    )


def _stream(seed: int = 7) -> list[Item]:
    rng = random.Random(seed)
    prices = {symbol: 100.0 * (i + 1) for i, symbol in enumerate((*SYMBOLS, QUIET))}
    out: list[Item] = []
    t = START
    n = 0
    while t < START + SPAN_MS:
        t += rng.randint(100, 900)
        symbol = rng.choice((*SYMBOLS, QUIET))
        price = prices[symbol] = round(prices[symbol] * (1 + rng.gauss(0, 0.0004)), 4)
        roll = rng.random()
        if symbol == QUIET or roll < 0.05:
            out.append(
                Ticker(symbol, t, price, 0.0, 0.0, price, price, price, 1.0, 1.0, price, price)
            )
        elif roll < 0.25:
            out.append(DepthSnapshot(symbol, t, ((price - 0.01, 2.0),), ((price + 0.01, 1.5),)))
        else:
            out.append(Trade(symbol, t, t, price, 0.01, rng.random() < 0.5))
        if rng.random() < 0.012:  # a signal every ~50 s of event time
            out.append(_signal(rng, symbol, t, price, n))
            n += 1
    return out


STREAM = _stream()


def _scorer(fill: FillRule = FillRule.NEXT_TRADE, **bounds: int) -> LiveScorer:
    return LiveScorer(
        TradeModelSettings(fill=fill, fee_bps=7.5, slippage_bps=1.5, max_hold_seconds=240.0),
        **bounds,
    )


def _checkpointed(state: Mapping[str, object]) -> dict[str, Any]:
    """Through the checkpoint adapter's encoding (adapters/nats/checkpoints.py)."""
    decoded: dict[str, Any] = msgspec.msgpack.Decoder().decode(
        msgspec.msgpack.Encoder().encode(state)
    )
    return decoded


def _everything(symbol: str) -> bool:
    return True


FIRST_SIGNAL = next(i for i, item in enumerate(STREAM) if isinstance(item, Signal))
CUTS = (
    FIRST_SIGNAL + 1,  # right after the first signal, before its fill
    len(STREAM) // 7,
    len(STREAM) // 3,
    len(STREAM) // 2,
    4 * len(STREAM) // 5,
    len(STREAM) - 1,
)
SCORERS: dict[str, Callable[[], LiveScorer]] = {
    "next trade": _scorer,
    "touch": lambda: _scorer(FillRule.TOUCH),
    "tight bounds": lambda: _scorer(max_pending_per_symbol=6, max_symbols=2),
}


@pytest.fixture(scope="module", params=list(SCORERS))
def uninterrupted(request: pytest.FixtureRequest) -> tuple[str, list[list[LiveOutcome]]]:
    """The updates of one scorer that never stops, item by item."""
    scorer = SCORERS[request.param]()
    return request.param, [feed(scorer, item) for item in STREAM]


def test_the_stream_reaches_every_kind_of_outcome(
    uninterrupted: tuple[str, list[list[LiveOutcome]]],
) -> None:
    name, per_item = uninterrupted
    if name == "tight bounds":
        scorer = SCORERS[name]()
        feed(scorer, *STREAM)
        assert scorer.dropped > scorer.followed / 2
        return
    updates = [u for item in per_item for u in item]
    changes = {u.change for u in updates}
    if name == "touch":  # fills at once: never unfilled, no reversal waits for a fill
        assert changes == set(OutcomeChange) - {OutcomeChange.UNFILLED}
    else:
        assert changes == set(OutcomeChange)
    assert {u.changed_horizon for u in updates} >= {"1m", "5m", "15m", "1h"}
    reasons = {u.trade.exit_reason for u in updates if u.trade is not None}
    assert reasons >= {
        ExitReason.STOP_LOSS,
        ExitReason.TAKE_PROFIT,
        ExitReason.TIMEOUT,
        ExitReason.REVERSAL,
    }


def _fed_to(name: str, cut: int) -> LiveScorer:
    """A scorer of kind ``name`` that has seen the stream up to ``cut``."""
    scorer = SCORERS[name]()
    feed(scorer, *STREAM[:cut])
    return scorer


def _restored(name: str, *states: dict[str, Any]) -> LiveScorer:
    """A fresh scorer of kind ``name`` with ``states`` merged into it, in that order."""
    scorer = SCORERS[name]()
    for state in states:
        scorer.merge_state(state)
    return scorer


def _assert_continues(
    after: LiveScorer, before: LiveScorer, per_item: list[list[LiveOutcome]], cut: int
) -> None:
    """``after`` holds what ``before`` held and gives the uninterrupted updates from ``cut``."""
    assert after.pending == before.pending
    assert feed(after, *STREAM[cut:]) == [u for item in per_item[cut:] for u in item]


@pytest.mark.parametrize("cut", CUTS)
def test_a_restored_scorer_continues_exactly_as_the_uninterrupted_one(
    cut: int, uninterrupted: tuple[str, list[list[LiveOutcome]]]
) -> None:
    name, per_item = uninterrupted
    before = _fed_to(name, cut)
    state = _checkpointed(before.to_state(_everything))
    assert state["symbols"], "nothing pending at the cut: a weak cut point"
    after = _restored(name, state)
    assert after.to_state(_everything) == state
    _assert_continues(after, before, per_item, cut)


# Not with tight bounds: which symbol a bound drops depends on the order the symbols were
# restored in (README Known gaps).
@pytest.mark.parametrize("uninterrupted", ["next trade", "touch"], indirect=True)
@pytest.mark.parametrize("cut", CUTS[1:-1])
def test_snapshots_cut_by_ownership_merge_into_one_scorer(
    cut: int, uninterrupted: tuple[str, list[list[LiveOutcome]]]
) -> None:
    name, per_item = uninterrupted
    before = _fed_to(name, cut)
    first = {"BTCUSDT", QUIET}
    mine = _checkpointed(before.to_state(lambda s: s in first))
    theirs = _checkpointed(before.to_state(lambda s: s not in first))
    assert mine["symbols"]
    assert theirs["symbols"]
    _assert_continues(_restored(name, theirs, mine), before, per_item, cut)


def test_merging_keeps_the_other_symbols_and_replaces_its_own() -> None:
    scorer = _scorer()
    feed(scorer, *STREAM[: len(STREAM) // 2])
    btc = _checkpointed(scorer.to_state(lambda s: s == "BTCUSDT"))
    rest = scorer.to_state(lambda s: s != "BTCUSDT")
    scorer.merge_state(btc)
    scorer.merge_state(btc)  # twice: replaced, not added
    assert scorer.to_state(lambda s: s != "BTCUSDT") == rest
    assert scorer.to_state(lambda s: s == "BTCUSDT") == btc


def test_a_signal_reads_back_equal_to_itself() -> None:
    for item in STREAM:
        if isinstance(item, Signal):
            state = _checkpointed(signal_to_state(item))
            assert signal_from_state(state) == item


def _snapshot() -> dict[str, Any]:
    scorer = _scorer(FillRule.TOUCH)
    feed(scorer, *STREAM[: len(STREAM) // 3])
    return _checkpointed(scorer.to_state(_everything))


SNAPSHOT = _snapshot()


def _entry(state: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = state["symbols"][0]
    return entry


def _position(state: dict[str, Any]) -> list[Any]:
    """The row of the snapshot's first open simulated position."""
    position: list[Any] = state["simulator"]["symbols"][0]["positions"][0]
    return position


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda s: s.pop("simulator"), "'simulator' must be an object"),
        (lambda s: s.update(symbols={}), "'symbols' must be a list"),
        (lambda s: _entry(s).update(last_trade_ms=1.5), "last_trade_ms must be an integer"),
        (lambda s: _entry(s).update(pending=[]), "no pending signal"),
        (lambda s: _entry(s)["pending"][0].update(next_index=4), "do not match next_index"),
        (lambda s: _entry(s)["pending"][0]["signal"].update(action="hold"), "not a valid Action"),
        (lambda s: _entry(s)["pending"][0]["signal"].update(price=-1.0), "price must be finite"),
        (lambda s: _entry(s)["pending"][0]["signal"].update(symbol="XUSDT"), "a signal of"),
        (lambda s: _entry(s)["pending"][0]["signal"]["config"].pop("version"), "config version"),
        (lambda s: _entry(s)["pending"].append(_entry(s)["pending"][0]), "twice"),
        (lambda s: s["simulator"]["symbols"][0]["positions"].append([1, 2]), "list of 12"),
        (lambda s: s["simulator"]["symbols"][0].update(bid="1.0"), "bid must be a number"),
        # Values a scorer could not have saved: each would fail on every later event of its
        # symbol (a zero entry price divides the P&L) or score a signal wrongly for ever.
        (lambda s: _entry(s)["pending"][0].update(next_index=5), "outside 0..4"),
        (lambda s: _entry(s)["pending"][0].update(horizons=[], next_index=-4), "outside 0..4"),
        (lambda s: _position(s).__setitem__(8, 0.0), "entry_price must be finite and above 0"),
        (lambda s: _position(s).__setitem__(6, math.inf), "take_profit must be finite"),
        (lambda s: _position(s).__setitem__(7, -250.0), "notional must be finite and above 0"),
        (lambda s: s["simulator"]["symbols"][0].update(ask=0), "ask must be finite and above 0"),
    ],
)
def test_a_malformed_snapshot_is_refused_naming_what_is_wrong_and_restores_nothing(
    mangle: Callable[[dict[str, Any]], object], message: str
) -> None:
    state = _checkpointed(SNAPSHOT)
    mangle(state)
    scorer = _scorer(FillRule.TOUCH)
    feed(scorer, *STREAM[:500])
    held = scorer.to_state(_everything)
    with pytest.raises(ValueError, match=message):
        scorer.merge_state(state)
    assert scorer.to_state(_everything) == held


_JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(),
    st.text(max_size=5),
    st.sampled_from(["buy", "sell", "1m", "timeout", "BTCUSDT"]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _containers(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _containers(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _containers(child, (*path, index))
    return found


PATHS = [path for path in _containers(SNAPSHOT) if path]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_merging_a_mutated_snapshot_restores_it_or_raises_value_error(data: st.DataObject) -> None:
    state = _checkpointed(SNAPSHOT)
    for _ in range(data.draw(st.integers(1, 3))):
        *parent_path, key = data.draw(st.sampled_from(PATHS))
        parent = state
        try:
            for step in parent_path:
                parent = parent[step]
            if data.draw(st.booleans()) and isinstance(parent, dict):
                parent.pop(key, None)
            else:
                parent[key] = data.draw(_JUNK)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation changed the path
    scorer = _scorer(FillRule.TOUCH)
    try:
        scorer.merge_state(state)
    except ValueError:
        return
    feed(scorer, *STREAM[len(STREAM) // 3 : len(STREAM) // 3 + 2_000])
