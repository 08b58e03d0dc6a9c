"""Contract every :class:`application.ports.OutcomeStore` adapter must pass.

Use it from an adapter's test module::

    class TestMongoOutcomeStore(OutcomeStoreContract):
        @pytest.fixture
        async def store(self) -> OutcomeStore:
            ...  # an adapter over an EMPTY store
"""

from __future__ import annotations

import pytest

from application.ports import OutcomeSelection, OutcomeStore
from domain.live_outcomes import HorizonResult, OutcomeRecord
from domain.signal import Action
from domain.trade_model import ClosedTrade, ExitReason

STRATEGY = "contract_alpha"
OTHER = "contract_beta"
T0 = 1_723_075_200_000


def make_outcome(
    n: int,
    *,
    strategy_id: str = STRATEGY,
    symbol: str = "BTCUSDT",
    version: int = 1,
    recorded_at_ms: int = T0,
    horizons: int = 0,
    closed: bool = False,
) -> OutcomeRecord:
    signal_id = f"{strategy_id}-{symbol}-{n}"
    time_ms = T0 + n * 1000
    results = {
        label: HorizonResult(label, 100.0 + i + 0.125, 12.5 * (i + 1), 12.5 * (i + 1) - 20.0)
        for i, label in enumerate(("1m", "5m", "15m", "1h")[:horizons])
    }
    trade = (
        ClosedTrade(
            signal_id=signal_id,
            strategy_id=strategy_id,
            symbol=symbol,
            config_version=version,
            action=Action.BUY,
            signal_time_ms=time_ms,
            entry_time_ms=time_ms + 100,
            entry_price=100.5,
            exit_time_ms=time_ms + 60_000,
            exit_price=101.25,
            exit_reason=ExitReason.TAKE_PROFIT,
            notional_usdt=100.0,
            gross_bps=74.6268656716418,
            net_bps=54.5,
        )
        if closed
        else None
    )
    return OutcomeRecord(
        signal_id=signal_id,
        strategy_id=strategy_id,
        symbol=symbol,
        action=Action.BUY,
        config_version=version,
        signal_time_ms=time_ms,
        price=100.0,
        recorded_at_ms=recorded_at_ms,
        payload={
            "signal_id": signal_id,
            "strategy_id": strategy_id,
            "symbol": symbol,
            "action": "buy",
            "price": 100.0,
            "indicators": {"ratio": 1.25},
            "metadata": {"strategy_config": {"version": version, "parameters": {"x": 0.1}}},
        },
        horizons=results,
        trade=trade,
        trade_unfilled=False,
    )


class OutcomeStoreContract:
    @pytest.fixture
    async def store(self) -> OutcomeStore:
        raise NotImplementedError("the adapter's test class provides the store")

    async def test_a_saved_record_reads_back_equal(self, store: OutcomeStore) -> None:
        record = make_outcome(1, horizons=4, closed=True)
        await store.save([record])
        assert await store.recent(STRATEGY, None, 10) == [record]

    async def test_save_replaces_the_record_of_a_signal_keeping_its_first_recording_time(
        self, store: OutcomeStore
    ) -> None:
        await store.save([make_outcome(1)])
        grown = make_outcome(1, horizons=2, closed=True, recorded_at_ms=T0 + 999)
        await store.save([grown])
        await store.save([grown])  # idempotent
        (stored,) = await store.recent(None, None, 10)
        assert stored.horizons == grown.horizons
        assert stored.trade == grown.trade
        assert stored.recorded_at_ms == T0

    async def test_recent_is_newest_first_filtered_and_limited(self, store: OutcomeStore) -> None:
        records = [make_outcome(n) for n in range(5)]
        records += [make_outcome(9, strategy_id=OTHER), make_outcome(7, symbol="ETHUSDT")]
        await store.save(records)
        assert [r.signal_id for r in await store.recent(STRATEGY, "BTCUSDT", 3)] == [
            f"{STRATEGY}-BTCUSDT-{n}" for n in (4, 3, 2)
        ]
        everything = await store.recent(None, None, 100)
        assert len(everything) == 7
        assert everything[0].strategy_id == OTHER
        assert [r.symbol for r in await store.recent(None, "ETHUSDT", 10)] == ["ETHUSDT"]
        assert await store.recent(STRATEGY, None, 0) == []

    async def test_query_filters_by_symbol_time_and_version(self, store: OutcomeStore) -> None:
        await store.save(
            [make_outcome(n, version=1 if n < 3 else 2) for n in range(6)]
            + [make_outcome(10, strategy_id=OTHER), make_outcome(11, symbol="ETHUSDT")]
        )
        ids = [r.signal_id for r in await store.query(OutcomeSelection(STRATEGY, "BTCUSDT"), 100)]
        assert ids == [f"{STRATEGY}-BTCUSDT-{n}" for n in (5, 4, 3, 2, 1, 0)]
        since = await store.query(OutcomeSelection(STRATEGY, since_ms=T0 + 4000), 100)
        assert {r.signal_id for r in since} == {
            f"{STRATEGY}-BTCUSDT-4",
            f"{STRATEGY}-BTCUSDT-5",
            f"{STRATEGY}-ETHUSDT-11",
        }
        version_one = await store.query(
            OutcomeSelection(STRATEGY, "BTCUSDT", config_version=1), 100
        )
        assert {r.config_version for r in version_one} == {1}
        assert len(version_one) == 3
        assert len(await store.query(OutcomeSelection(STRATEGY), 2)) == 2

    async def test_purge_deletes_by_first_recording_time(self, store: OutcomeStore) -> None:
        await store.save([make_outcome(n, recorded_at_ms=T0 + n) for n in range(4)])
        assert await store.purge(T0 + 2) == 2
        left = await store.recent(None, None, 10)
        assert sorted(r.recorded_at_ms for r in left) == [T0 + 2, T0 + 3]
        assert await store.purge(T0) == 0

    async def test_ping_answers(self, store: OutcomeStore) -> None:
        await store.ping()
