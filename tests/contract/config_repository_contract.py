"""Contract every :class:`application.ports.ConfigRepository` adapter must pass.

Use it from an adapter's test module::

    class TestMongoConfigRepository(ConfigRepositoryContract):
        @pytest.fixture
        async def repository(self) -> ConfigRepository:
            repo = ...  # an adapter over an EMPTY store (fresh database / tables)
            yield repo
            ...  # drop the store, close clients

The fixture must yield an adapter over an empty store; strategy ids used here start with
``contract_``. Override :meth:`expected_source` if the adapter reports a ``source`` other
than its ``name`` (a primary/fallback composite, for example); return None to skip the check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from application.ports import ConfigRepository, VersionConflictError
from domain.config import ConfigDocument
from domain.params import ParamValue

STRATEGY = "contract_alpha"
OTHER_STRATEGY = "contract_beta"
T0 = datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)

TYPED_PARAMETERS: dict[str, ParamValue] = {
    "enabled": True,
    "volume_confirmation": False,
    "cooldown_seconds": 60,
    "zero_int": 0,
    "negative_int": -3,
    "big_int": 2**40,
    "buy_threshold": 1.0,
    "zero_float": 0.0,
    "sell_threshold": -0.7,
    "tiny": 0.0001,
    "inexact": 0.1 + 0.2,
    "large_float": 123456.789,
}


def make_document(
    *,
    strategy_id: str = STRATEGY,
    symbol: str | None = None,
    parameters: Mapping[str, ParamValue] | None = None,
    version: int = 1,
    updated_at: datetime = T0,
    updated_by: str = "contract-tester",
) -> ConfigDocument:
    return ConfigDocument(
        strategy_id=strategy_id,
        symbol=symbol,
        parameters=dict({"cooldown_seconds": 30} if parameters is None else parameters),
        version=version,
        updated_at=updated_at,
        updated_by=updated_by,
    )


def assert_same_parameters(
    got: Mapping[str, ParamValue], expected: Mapping[str, ParamValue]
) -> None:
    """Equal values AND identical types: a bool stays a bool, an int stays an int."""
    assert dict(got) == dict(expected)
    for name, value in expected.items():
        assert type(got[name]) is type(value), (name, got[name], value)


def assert_utc(moment: datetime) -> None:
    assert moment.tzinfo is not None
    assert moment.utcoffset() == timedelta(0)


class ConfigRepositoryContract:
    """Behaviour shared by every configuration store adapter."""

    @pytest.fixture
    async def repository(self) -> ConfigRepository:
        raise NotImplementedError("subclasses provide a `repository` fixture over an empty store")

    def expected_source(self, repository: ConfigRepository) -> str | None:
        return repository.name

    def assert_round_trip(
        self, repository: ConfigRepository, got: ConfigDocument | None, saved: ConfigDocument
    ) -> None:
        assert got is not None
        assert got.source
        expected_source = self.expected_source(repository)
        if expected_source is not None:
            assert got.source == expected_source
        assert replace(got, source="") == replace(saved, source="")
        assert_same_parameters(got.parameters, saved.parameters)
        assert_utc(got.updated_at)

    # --- get / save round trip -------------------------------------------------------------

    async def test_name_is_set(self, repository: ConfigRepository) -> None:
        assert isinstance(repository.name, str)
        assert repository.name

    async def test_ping_succeeds(self, repository: ConfigRepository) -> None:
        await repository.ping()

    async def test_get_missing_returns_none(self, repository: ConfigRepository) -> None:
        assert await repository.get(STRATEGY, None) is None
        assert await repository.get(STRATEGY, "BTCUSDT") is None

    async def test_save_then_get_round_trips_every_field(
        self, repository: ConfigRepository
    ) -> None:
        global_doc = make_document(updated_by="llm_agent_v1 ✓ ü")
        symbol_doc = make_document(
            symbol="BTCUSDT",
            parameters={"buy_threshold": 1.5},
            version=2,
            updated_at=T0 + timedelta(seconds=1),
            updated_by="operator",
        )
        await repository.save(global_doc, expected_version=0)
        await repository.save(symbol_doc, expected_version=0)
        self.assert_round_trip(repository, await repository.get(STRATEGY, None), global_doc)
        self.assert_round_trip(repository, await repository.get(STRATEGY, "BTCUSDT"), symbol_doc)

    async def test_parameter_types_are_preserved_exactly(
        self, repository: ConfigRepository
    ) -> None:
        saved = make_document(parameters=TYPED_PARAMETERS)
        await repository.save(saved, expected_version=0)
        got = await repository.get(STRATEGY, None)
        assert got is not None
        assert_same_parameters(got.parameters, TYPED_PARAMETERS)
        listed = await repository.list(STRATEGY)
        assert len(listed) == 1
        assert_same_parameters(listed[0].parameters, TYPED_PARAMETERS)

    async def test_datetimes_come_back_tz_aware_utc_at_millisecond_precision(
        self, repository: ConfigRepository
    ) -> None:
        with_micros = datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
        await repository.save(make_document(updated_at=with_micros), expected_version=0)
        got = await repository.get(STRATEGY, None)
        assert got is not None
        assert_utc(got.updated_at)
        assert abs(got.updated_at - with_micros) < timedelta(milliseconds=1)

        plus_two = timezone(timedelta(hours=2))
        elsewhere = datetime(2025, 6, 1, 14, 0, 0, 250000, tzinfo=plus_two)
        await repository.save(make_document(symbol="ETHUSDT", updated_at=elsewhere), 0)
        got = await repository.get(STRATEGY, "ETHUSDT")
        assert got is not None
        assert_utc(got.updated_at)
        assert got.updated_at == datetime(2025, 6, 1, 12, 0, 0, 250000, tzinfo=UTC)

    # --- compare-and-set -------------------------------------------------------------------

    async def test_save_with_expected_version_replaces(self, repository: ConfigRepository) -> None:
        await repository.save(make_document(version=1), expected_version=0)
        second = make_document(parameters={"cooldown_seconds": 90}, version=2)
        await repository.save(second, expected_version=1)
        self.assert_round_trip(repository, await repository.get(STRATEGY, None), second)
        assert len(await repository.list(STRATEGY)) == 1

    async def test_create_conflicts_when_layer_exists(self, repository: ConfigRepository) -> None:
        first = make_document(version=1)
        await repository.save(first, expected_version=0)
        with pytest.raises(VersionConflictError):
            await repository.save(make_document(parameters={"x": 1}, version=2), 0)
        self.assert_round_trip(repository, await repository.get(STRATEGY, None), first)

    async def test_save_with_wrong_expected_version_conflicts(
        self, repository: ConfigRepository
    ) -> None:
        with pytest.raises(VersionConflictError):
            await repository.save(make_document(version=4), expected_version=3)
        assert await repository.get(STRATEGY, None) is None

        first = make_document(version=1)
        await repository.save(first, expected_version=0)
        for wrong in (2, 5):
            with pytest.raises(VersionConflictError):
                await repository.save(make_document(parameters={"x": 2}, version=6), wrong)
        self.assert_round_trip(repository, await repository.get(STRATEGY, None), first)

    async def test_concurrent_saves_with_same_expected_version_exactly_one_wins(
        self, repository: ConfigRepository
    ) -> None:
        await repository.save(make_document(version=1), expected_version=0)
        contenders = [
            make_document(parameters={"cooldown_seconds": 100 + i}, version=2, updated_by=f"w{i}")
            for i in range(8)
        ]
        outcomes = await asyncio.gather(
            *(repository.save(doc, expected_version=1) for doc in contenders),
            return_exceptions=True,
        )
        winners = [doc for doc, outcome in zip(contenders, outcomes, strict=True) if not outcome]
        losers = [outcome for outcome in outcomes if outcome is not None]
        assert len(winners) == 1
        assert len(losers) == len(contenders) - 1
        assert all(isinstance(outcome, VersionConflictError) for outcome in losers)
        self.assert_round_trip(repository, await repository.get(STRATEGY, None), winners[0])

    async def test_concurrent_creates_exactly_one_wins(self, repository: ConfigRepository) -> None:
        contenders = [
            make_document(symbol="SOLUSDT", parameters={"cooldown_seconds": i}, version=1)
            for i in range(1, 6)
        ]
        outcomes = await asyncio.gather(
            *(repository.save(doc, expected_version=0) for doc in contenders),
            return_exceptions=True,
        )
        assert sum(1 for outcome in outcomes if outcome is None) == 1
        assert all(
            isinstance(outcome, VersionConflictError) for outcome in outcomes if outcome is not None
        )
        assert len(await repository.list(STRATEGY)) == 1

    # --- layers, strategies, tombstones ----------------------------------------------------

    async def test_symbol_layers_are_separate_from_global(
        self, repository: ConfigRepository
    ) -> None:
        global_doc = make_document(parameters={"cooldown_seconds": 10}, version=3)
        await repository.save(global_doc, expected_version=0)
        assert await repository.get(STRATEGY, "BTCUSDT") is None

        # A symbol layer's compare-and-set looks at that layer only.
        btc = make_document(symbol="BTCUSDT", parameters={"cooldown_seconds": 20}, version=4)
        await repository.save(btc, expected_version=0)
        eth = make_document(symbol="ETHUSDT", parameters={"cooldown_seconds": 30}, version=5)
        await repository.save(eth, expected_version=0)
        btc2 = make_document(symbol="BTCUSDT", parameters={"cooldown_seconds": 21}, version=6)
        with pytest.raises(VersionConflictError):
            await repository.save(btc2, expected_version=3)
        await repository.save(btc2, expected_version=4)

        self.assert_round_trip(repository, await repository.get(STRATEGY, None), global_doc)
        self.assert_round_trip(repository, await repository.get(STRATEGY, "BTCUSDT"), btc2)
        self.assert_round_trip(repository, await repository.get(STRATEGY, "ETHUSDT"), eth)

    async def test_strategies_are_separate(self, repository: ConfigRepository) -> None:
        alpha = make_document(parameters={"cooldown_seconds": 1}, version=1)
        beta = make_document(strategy_id=OTHER_STRATEGY, parameters={"enabled": False}, version=1)
        await repository.save(alpha, expected_version=0)
        await repository.save(beta, expected_version=0)
        self.assert_round_trip(repository, await repository.get(STRATEGY, None), alpha)
        self.assert_round_trip(repository, await repository.get(OTHER_STRATEGY, None), beta)

    async def test_list_per_strategy_and_all(self, repository: ConfigRepository) -> None:
        assert await repository.list() == []
        assert await repository.list(STRATEGY) == []
        saved = [
            make_document(version=1),
            make_document(symbol="BTCUSDT", parameters={"cooldown_seconds": 5}, version=2),
            make_document(symbol="ETHUSDT", parameters={"enabled": False}, version=3),
            make_document(strategy_id=OTHER_STRATEGY, version=1),
            make_document(strategy_id=OTHER_STRATEGY, symbol="BTCUSDT", version=2),
        ]
        for document in saved:
            await repository.save(document, expected_version=0)

        def keyed(docs: list[ConfigDocument]) -> dict[tuple[str, str | None], ConfigDocument]:
            return {(d.strategy_id, d.symbol): replace(d, source="") for d in docs}

        everything = await repository.list()
        assert len(everything) == len(saved)
        assert keyed(everything) == keyed(saved)
        alpha = await repository.list(STRATEGY)
        assert keyed(alpha) == keyed([d for d in saved if d.strategy_id == STRATEGY])
        beta = await repository.list(OTHER_STRATEGY)
        assert keyed(beta) == keyed([d for d in saved if d.strategy_id == OTHER_STRATEGY])
        assert await repository.list("contract_missing") == []
        for document in everything:
            assert document.source
            assert_utc(document.updated_at)

    async def test_many_symbols_are_listed(self, repository: ConfigRepository) -> None:
        symbols = [f"SYM{i}USDT" for i in range(30)]
        for version, symbol in enumerate(symbols, start=1):
            await repository.save(make_document(symbol=symbol, version=version), 0)
        listed = await repository.list(STRATEGY)
        assert sorted(d.symbol or "" for d in listed) == sorted(symbols)

    async def test_tombstones_are_stored_listed_and_replaceable(
        self, repository: ConfigRepository
    ) -> None:
        await repository.save(make_document(symbol="BTCUSDT", version=1), expected_version=0)
        tombstone = make_document(symbol="BTCUSDT", parameters={}, version=2)
        assert tombstone.is_deleted
        await repository.save(tombstone, expected_version=1)

        got = await repository.get(STRATEGY, "BTCUSDT")
        assert got is not None
        assert got.is_deleted
        assert got.version == 2
        self.assert_round_trip(repository, got, tombstone)
        listed = await repository.list(STRATEGY)
        assert [(d.symbol, d.version, d.is_deleted) for d in listed] == [("BTCUSDT", 2, True)]
        assert len(await repository.list()) == 1

        # Re-creating over a tombstone is a compare-and-set against the tombstone's version.
        revived = make_document(symbol="BTCUSDT", parameters={"cooldown_seconds": 7}, version=3)
        with pytest.raises(VersionConflictError):
            await repository.save(revived, expected_version=0)
        await repository.save(revived, expected_version=2)
        self.assert_round_trip(repository, await repository.get(STRATEGY, "BTCUSDT"), revived)

    async def test_global_tombstone(self, repository: ConfigRepository) -> None:
        await repository.save(make_document(version=1), expected_version=0)
        await repository.save(make_document(parameters={}, version=2), expected_version=1)
        got = await repository.get(STRATEGY, None)
        assert got is not None
        assert got.is_deleted
        assert [d.version for d in await repository.list(STRATEGY)] == [2]
