"""Contract every :class:`application.ports.PauseStore` adapter must pass, together with the
unit of work and audit log of the same store (a pause is written with its audit record).

Use it from an adapter's test module::

    class TestSqlitePauseStore(PauseStoreContract):
        @pytest.fixture
        async def stores(self) -> PauseStores:
            return PauseStores(SqlPauseStore(e), SqlConfigUnitOfWork(e), SqlAuditLog(e))

The fixture's stores must be EMPTY.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from application.ports import AuditLog, ConfigUnitOfWork, PauseStore, VersionConflictError
from domain.config import AuditAction, AuditQuery, AuditRecord, ConfigDocument
from domain.governance import EVERY_STRATEGY, Pause, PauseRecord

T0 = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
STRATEGY = "contract_alpha"


@dataclass(frozen=True, slots=True)
class PauseStores:
    pauses: PauseStore
    unit_of_work: ConfigUnitOfWork
    audit_log: AuditLog


def make_pause(
    strategy_id: str | None = None,
    symbol: str | None = None,
    *,
    active: bool = True,
    version: int = 1,
    reason: str = "contract",
) -> PauseRecord:
    return PauseRecord(
        pause=Pause(strategy_id, symbol),
        active=active,
        version=version,
        updated_at=T0 + timedelta(seconds=version),
        updated_by="contract-tester",
        reason=reason,
    )


def audit_of(record: PauseRecord) -> AuditRecord:
    return AuditRecord(
        strategy_id=record.sequence_key,
        symbol=record.pause.symbol,
        action=AuditAction.PAUSE if record.active else AuditAction.RESUME,
        old_parameters={"paused": not record.active},
        new_parameters={"paused": record.active},
        changed_by=record.updated_by,
        changed_at=record.updated_at,
        reason=record.reason,
        version=record.version,
    )


def comparable(record: PauseRecord) -> PauseRecord:
    """What a store gives back: milliseconds, no source."""
    at = record.updated_at
    return replace(
        record, updated_at=at.replace(microsecond=at.microsecond // 1000 * 1000), source=""
    )


class PauseStoreContract:
    """The behaviour every pause store promises (see :class:`application.ports.PauseStore`)."""

    @pytest.fixture
    async def stores(self) -> PauseStores:
        raise NotImplementedError("the adapter's test module provides the stores")

    async def test_an_empty_store_has_no_pauses(self, stores: PauseStores) -> None:
        assert await stores.pauses.list() == []

    async def test_apply_stores_every_field_and_lists_in_key_order(
        self, stores: PauseStores
    ) -> None:
        records = [
            make_pause(STRATEGY, "BTCUSDT", version=3, reason="both"),
            make_pause(None, None, version=1, reason="global \u00e9"),
            make_pause(None, "ETHUSDT", active=False, version=2),
            make_pause(STRATEGY, None, version=4),
        ]
        for record in records:
            assert await stores.pauses.apply(record) is True
        listed = await stores.pauses.list()
        assert [r.key for r in listed] == sorted(r.key for r in records)
        assert {r.key: replace(r, source="") for r in listed} == {
            r.key: comparable(r) for r in records
        }
        assert all(r.source == stores.pauses.name for r in listed)
        assert all(r.updated_at.tzinfo is not None for r in listed)

    async def test_apply_keeps_the_newest_version_of_a_key(self, stores: PauseStores) -> None:
        assert await stores.pauses.apply(make_pause(STRATEGY, version=5))
        assert not await stores.pauses.apply(make_pause(STRATEGY, active=False, version=5))
        assert not await stores.pauses.apply(make_pause(STRATEGY, active=False, version=4))
        (held,) = await stores.pauses.list()
        assert (held.active, held.version) == (True, 5)
        assert await stores.pauses.apply(make_pause(STRATEGY, active=False, version=6))
        (held,) = await stores.pauses.list()
        assert (held.active, held.version) == (False, 6)

    async def test_a_unit_of_work_stores_the_pause_with_its_audit_record(
        self, stores: PauseStores
    ) -> None:
        async with stores.unit_of_work.write(STRATEGY) as transaction:
            version = await transaction.next_version()
            record = make_pause(STRATEGY, "BTCUSDT", version=version)
            await transaction.save_pause(record, 0)
            await transaction.append(audit_of(record))
        assert version == 1
        (held,) = await stores.pauses.list()
        assert replace(held, source="") == comparable(record)
        (audited,) = await stores.audit_log.list(AuditQuery(STRATEGY))
        assert (audited.id, audited.action, audited.symbol) == (
            f"{STRATEGY}:1",
            AuditAction.PAUSE,
            "BTCUSDT",
        )

    async def test_pauses_and_layers_share_the_strategy_sequence(self, stores: PauseStores) -> None:
        async with stores.unit_of_work.write(STRATEGY) as transaction:
            record = make_pause(STRATEGY, version=await transaction.next_version())
            await transaction.save_pause(record, 0)
            await transaction.append(audit_of(record))
        async with stores.unit_of_work.write(STRATEGY) as transaction:
            version = await transaction.next_version()
            document = ConfigDocument(
                strategy_id=STRATEGY,
                symbol=None,
                parameters={"cooldown_seconds": 30},
                version=version,
                updated_at=T0,
                updated_by="contract-tester",
                source=transaction.store_name,
            )
            await transaction.save(document, 0)
            await transaction.append(
                AuditRecord(
                    strategy_id=STRATEGY,
                    symbol=None,
                    action=AuditAction.CREATE,
                    old_parameters=None,
                    new_parameters={"cooldown_seconds": 30},
                    changed_by="contract-tester",
                    changed_at=T0,
                    reason="",
                    version=version,
                )
            )
        assert version == 2
        # The "every strategy" sequence is separate.
        async with stores.unit_of_work.write(EVERY_STRATEGY) as transaction:
            assert await transaction.next_version() == 1

    async def test_a_copy_moves_the_sequence_past_its_version(self, stores: PauseStores) -> None:
        await stores.pauses.apply(make_pause(STRATEGY, version=7))
        async with stores.unit_of_work.write(STRATEGY) as transaction:
            assert await transaction.next_version() == 8

    async def _write(self, stores: PauseStores, record: PauseRecord, expected: int) -> None:
        async with stores.unit_of_work.write(record.sequence_key) as transaction:
            await transaction.save_pause(record, expected)
            await transaction.append(audit_of(record))

    async def _assert_unchanged(
        self, stores: PauseStores, held: PauseRecord, audited: int = 0
    ) -> None:
        assert [replace(r, source="") for r in await stores.pauses.list()] == [comparable(held)]
        assert len(await stores.audit_log.list(AuditQuery(None))) == audited

    async def test_saving_a_version_not_newer_than_the_held_one_conflicts(
        self, stores: PauseStores
    ) -> None:
        held = make_pause(None, None, version=3)
        await stores.pauses.apply(held)
        with pytest.raises(VersionConflictError):
            await self._write(stores, make_pause(None, None, active=False, version=3), 3)
        await self._assert_unchanged(stores, held)

    async def test_a_first_record_of_a_key_held_by_another_writer_conflicts(
        self, stores: PauseStores
    ) -> None:
        held = make_pause(STRATEGY, "BTCUSDT", version=1)
        await self._write(stores, held, 0)
        # Another writer decided on "no record" too: its write must not replace this one.
        with pytest.raises(VersionConflictError):
            await self._write(stores, make_pause(STRATEGY, "BTCUSDT", version=2, reason="b"), 0)
        await self._assert_unchanged(stores, held, audited=1)

    async def test_a_write_decided_on_an_older_record_of_its_key_conflicts(
        self, stores: PauseStores
    ) -> None:
        await self._write(stores, make_pause(STRATEGY, version=1), 0)
        held = make_pause(STRATEGY, active=False, version=2)
        await self._write(stores, held, 1)
        with pytest.raises(VersionConflictError):  # decided on version 1: a second RESUME
            await self._write(stores, make_pause(STRATEGY, active=False, version=3), 1)
        await self._assert_unchanged(stores, held, audited=2)

    async def test_a_write_expecting_a_record_the_key_lacks_conflicts(
        self, stores: PauseStores
    ) -> None:
        held = make_pause(None, "ETHUSDT", version=1)
        await self._write(stores, held, 0)  # same sequence, another key
        with pytest.raises(VersionConflictError):
            await self._write(stores, make_pause(None, None, version=2), 1)
        await self._assert_unchanged(stores, held, audited=1)

    async def test_a_write_at_the_held_version_replaces_the_record(
        self, stores: PauseStores
    ) -> None:
        await self._write(stores, make_pause(STRATEGY, "BTCUSDT", version=1), 0)
        await self._write(stores, make_pause(STRATEGY, "ETHUSDT", version=2), 0)  # other key
        await self._write(stores, make_pause(STRATEGY, "BTCUSDT", active=False, version=3), 1)
        listed = {r.key: (r.active, r.version) for r in await stores.pauses.list()}
        assert listed == {
            f"{STRATEGY}/BTCUSDT": (False, 3),
            f"{STRATEGY}/ETHUSDT": (True, 2),
        }
        records = await stores.audit_log.list(AuditQuery(STRATEGY))
        assert [(r.version, r.action) for r in records] == [
            (3, AuditAction.RESUME),
            (2, AuditAction.PAUSE),
            (1, AuditAction.PAUSE),
        ]
