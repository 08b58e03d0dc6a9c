"""Contract every :class:`application.ports.AuditLog` adapter must pass.

Use it from an adapter's test module::

    class TestMongoAuditLog(AuditLogContract):
        @pytest.fixture
        async def audit_log(self) -> AuditLog:
            log = ...  # an adapter over an EMPTY store
            yield log
            ...  # drop the store, close clients

"Newest first" is the :class:`domain.config.AuditPosition` order: ``changed_at``, then
strategy id, then version, all descending. A store keeps one record per (strategy, version).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from application.ports import AuditLog
from domain.config import AuditAction, AuditPosition, AuditQuery, AuditRecord
from domain.params import ParamValue
from tests.contract.config_repository_contract import (
    OTHER_STRATEGY,
    STRATEGY,
    T0,
    TYPED_PARAMETERS,
    assert_same_parameters,
    assert_utc,
)


def make_record(
    *,
    strategy_id: str = STRATEGY,
    symbol: str | None = None,
    action: AuditAction = AuditAction.UPDATE,
    old_parameters: Mapping[str, ParamValue] | None = None,
    new_parameters: Mapping[str, ParamValue] | None = None,
    changed_at: datetime = T0,
    changed_by: str = "contract-tester",
    reason: str = "contract",
    version: int = 1,
) -> AuditRecord:
    return AuditRecord(
        strategy_id=strategy_id,
        symbol=symbol,
        action=action,
        old_parameters=None if old_parameters is None else dict(old_parameters),
        new_parameters=None if new_parameters is None else dict(new_parameters),
        changed_by=changed_by,
        changed_at=changed_at,
        reason=reason,
        version=version,
    )


def assert_same_optional_parameters(
    got: Mapping[str, ParamValue] | None, expected: Mapping[str, ParamValue] | None
) -> None:
    if expected is None:
        assert got is None
        return
    assert got is not None
    assert_same_parameters(got, expected)


def assert_same_record(got: AuditRecord, expected: AuditRecord) -> None:
    assert got == expected
    assert isinstance(got.action, AuditAction)
    assert_utc(got.changed_at)
    assert_same_optional_parameters(got.old_parameters, expected.old_parameters)
    assert_same_optional_parameters(got.new_parameters, expected.new_parameters)


class AuditLogContract:
    """Behaviour shared by every audit log adapter."""

    @pytest.fixture
    async def audit_log(self) -> AuditLog:
        raise NotImplementedError("subclasses provide an `audit_log` fixture over an empty store")

    async def test_list_of_empty_log_is_empty(self, audit_log: AuditLog) -> None:
        assert await audit_log.list(AuditQuery(STRATEGY)) == []
        assert await audit_log.list(AuditQuery(STRATEGY, "BTCUSDT")) == []

    async def test_append_then_list_round_trips_every_field(self, audit_log: AuditLog) -> None:
        created = make_record(
            action=AuditAction.CREATE,
            old_parameters=None,
            new_parameters=TYPED_PARAMETERS,
            changed_by="llm_agent_v1 ✓",
            reason="Marché plus volatil: ajuster",
            version=1,
        )
        await audit_log.append(created)
        [got] = await audit_log.list(AuditQuery(STRATEGY))
        assert_same_record(got, created)

    async def test_every_action_round_trips(self, audit_log: AuditLog) -> None:
        records = [
            make_record(
                action=AuditAction.CREATE,
                new_parameters={"cooldown_seconds": 10},
                changed_at=T0,
                version=1,
            ),
            make_record(
                action=AuditAction.UPDATE,
                old_parameters={"cooldown_seconds": 10},
                new_parameters={"cooldown_seconds": 20, "enabled": False},
                changed_at=T0 + timedelta(seconds=1),
                version=2,
            ),
            make_record(
                action=AuditAction.DELETE,
                old_parameters={"cooldown_seconds": 20, "enabled": False},
                new_parameters=None,
                changed_at=T0 + timedelta(seconds=2),
                version=3,
            ),
            make_record(
                action=AuditAction.ROLLBACK,
                old_parameters=None,
                new_parameters={"cooldown_seconds": 10},
                changed_at=T0 + timedelta(seconds=3),
                version=4,
            ),
        ]
        for record in records:
            await audit_log.append(record)
        listed = await audit_log.list(AuditQuery(STRATEGY))
        assert len(listed) == len(records)
        for got, expected in zip(listed, reversed(records), strict=True):
            assert_same_record(got, expected)

    async def test_changed_at_is_utc_at_millisecond_precision(self, audit_log: AuditLog) -> None:
        with_micros = datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
        await audit_log.append(make_record(changed_at=with_micros))
        [got] = await audit_log.list(AuditQuery(STRATEGY))
        assert got.changed_at.utcoffset() == timedelta(0)
        assert abs(got.changed_at - with_micros) < timedelta(milliseconds=1)

    async def test_newest_first_by_changed_at(self, audit_log: AuditLog) -> None:
        for offset in (0, 30, 10, 20):  # appended out of order
            await audit_log.append(
                make_record(changed_at=T0 + timedelta(seconds=offset), version=offset + 1)
            )
        listed = await audit_log.list(AuditQuery(STRATEGY))
        assert [r.version for r in listed] == [31, 21, 11, 1]

    async def test_equal_changed_at_lists_latest_appended_first(self, audit_log: AuditLog) -> None:
        for version in (1, 2, 3):
            await audit_log.append(make_record(changed_at=T0, version=version))
        assert [r.version for r in await audit_log.list(AuditQuery(STRATEGY))] == [3, 2, 1]

    async def test_filter_by_symbol_and_none_means_all(self, audit_log: AuditLog) -> None:
        layout = [(None, 1), ("BTCUSDT", 2), ("ETHUSDT", 3), ("BTCUSDT", 4), (None, 5)]
        for step, (symbol, version) in enumerate(layout):
            await audit_log.append(
                make_record(symbol=symbol, changed_at=T0 + timedelta(seconds=step), version=version)
            )
        await audit_log.append(
            make_record(strategy_id=OTHER_STRATEGY, symbol="BTCUSDT", changed_at=T0, version=9)
        )
        assert [r.version for r in await audit_log.list(AuditQuery(STRATEGY))] == [5, 4, 3, 2, 1]
        assert [r.version for r in await audit_log.list(AuditQuery(STRATEGY, None))] == [
            5,
            4,
            3,
            2,
            1,
        ]
        btc = await audit_log.list(AuditQuery(STRATEGY, "BTCUSDT"))
        assert [(r.symbol, r.version) for r in btc] == [("BTCUSDT", 4), ("BTCUSDT", 2)]
        assert [r.version for r in await audit_log.list(AuditQuery(STRATEGY, "ETHUSDT"))] == [3]
        assert await audit_log.list(AuditQuery(STRATEGY, "SOLUSDT")) == []
        other = await audit_log.list(AuditQuery(OTHER_STRATEGY))
        assert [(r.strategy_id, r.version) for r in other] == [(OTHER_STRATEGY, 9)]
        assert await audit_log.list(AuditQuery("contract_missing")) == []

    async def test_limit_keeps_the_newest(self, audit_log: AuditLog) -> None:
        for step in range(12):
            await audit_log.append(
                make_record(
                    symbol="BTCUSDT" if step % 2 else None,
                    changed_at=T0 + timedelta(seconds=step),
                    version=step + 1,
                )
            )
        assert [r.version for r in await audit_log.list(AuditQuery(STRATEGY, limit=3))] == [
            12,
            11,
            10,
        ]
        assert [
            r.version for r in await audit_log.list(AuditQuery(STRATEGY, "BTCUSDT", limit=2))
        ] == [12, 10]
        assert len(await audit_log.list(AuditQuery(STRATEGY, limit=1))) == 1
        assert len(await audit_log.list(AuditQuery(STRATEGY, limit=100))) == 12
        assert len(await audit_log.list(AuditQuery(STRATEGY))) == 12  # default limit 100

    async def test_one_record_per_strategy_and_version(self, audit_log: AuditLog) -> None:
        first = make_record(version=7, reason="first")
        await audit_log.append(first)
        await audit_log.append(make_record(version=7, reason="a copy", changed_by="other"))
        await audit_log.append(make_record(strategy_id=OTHER_STRATEGY, version=7))
        [got] = await audit_log.list(AuditQuery(STRATEGY))
        assert_same_record(got, first)
        assert got.id == f"{STRATEGY}:7"
        assert len(await audit_log.list(AuditQuery(None))) == 2

    async def test_time_range_and_every_strategy(self, audit_log: AuditLog) -> None:
        for step in range(6):
            strategy_id = STRATEGY if step % 2 else OTHER_STRATEGY
            await audit_log.append(
                make_record(
                    strategy_id=strategy_id, changed_at=T0 + timedelta(seconds=step), version=step
                )
            )
        everything = await audit_log.list(AuditQuery(None))
        assert [(r.strategy_id, r.version) for r in everything] == [
            (STRATEGY, 5),
            (OTHER_STRATEGY, 4),
            (STRATEGY, 3),
            (OTHER_STRATEGY, 2),
            (STRATEGY, 1),
            (OTHER_STRATEGY, 0),
        ]
        since, until = T0 + timedelta(seconds=1), T0 + timedelta(seconds=4)
        window = await audit_log.list(AuditQuery(None, since=since, until=until))
        assert [r.version for r in window] == [3, 2, 1]  # since inclusive, until exclusive
        mine = await audit_log.list(AuditQuery(STRATEGY, since=since, until=until))
        assert [r.version for r in mine] == [3, 1]

    async def test_pages_continue_after_a_position(self, audit_log: AuditLog) -> None:
        # Equal times across strategies: the strategy id and version break the tie.
        for version in range(1, 8):
            for strategy_id in (STRATEGY, OTHER_STRATEGY):
                await audit_log.append(
                    make_record(strategy_id=strategy_id, changed_at=T0, version=version)
                )
        seen: list[tuple[str, int]] = []
        after: AuditPosition | None = None
        while True:
            page = await audit_log.list(AuditQuery(None, limit=4, after=after))
            if not page:
                break
            seen += [(r.strategy_id, r.version) for r in page]
            after = page[-1].position
        expected = sorted(
            ((s, v) for s in (STRATEGY, OTHER_STRATEGY) for v in range(1, 8)),
            key=lambda item: (item[0], item[1]),
            reverse=True,
        )
        assert seen == expected
