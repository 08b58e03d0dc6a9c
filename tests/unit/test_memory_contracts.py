"""The port contract suites, run against the in-memory adapters (plus their failure switch)."""

from __future__ import annotations

import pytest

from adapters.failover import (
    FailoverAuditLog,
    FailoverConfigRepository,
    FailoverConfigUnitOfWork,
    FailoverPauseStore,
)
from adapters.memory.audit_log import InMemoryAuditLog
from adapters.memory.config_repository import InMemoryConfigRepository
from adapters.memory.outcome_store import InMemoryOutcomeStore
from adapters.memory.pause_store import InMemoryPauseStore
from adapters.memory.unit_of_work import InMemoryConfigUnitOfWork
from application.ports import AuditLog, ConfigRepository, OutcomeStore, StoreUnavailableError
from domain.config import AuditQuery
from tests.contract.audit_log_contract import AuditLogContract, make_record
from tests.contract.config_repository_contract import ConfigRepositoryContract, make_document
from tests.contract.outcome_store_contract import OutcomeStoreContract
from tests.contract.pause_store_contract import PauseStoreContract, PauseStores, make_pause

pytestmark = pytest.mark.unit


class TestInMemoryConfigRepository(ConfigRepositoryContract):
    @pytest.fixture
    async def repository(self) -> ConfigRepository:
        return InMemoryConfigRepository()


class TestInMemoryAuditLog(AuditLogContract):
    @pytest.fixture
    async def audit_log(self) -> AuditLog:
        return InMemoryAuditLog()


class TestInMemoryPauseStore(PauseStoreContract):
    @pytest.fixture
    async def stores(self) -> PauseStores:
        audit_log, pauses = InMemoryAuditLog(), InMemoryPauseStore()
        unit_of_work = InMemoryConfigUnitOfWork(InMemoryConfigRepository(), audit_log, pauses)
        return PauseStores(pauses, unit_of_work, audit_log)


class TestFailoverPauseStore(PauseStoreContract):
    """The failover pair of two in-memory stores, both up: writes through its unit of work."""

    @pytest.fixture
    async def stores(self) -> PauseStores:
        memories = [
            (InMemoryConfigRepository(), InMemoryAuditLog(), InMemoryPauseStore()) for _ in range(2)
        ]
        (repo_a, audit_a, pauses_a), (repo_b, audit_b, pauses_b) = memories
        repository = FailoverConfigRepository(repo_a, repo_b)
        audit_log = FailoverAuditLog(audit_a, audit_b, repository=repository)
        pauses = FailoverPauseStore(pauses_a, pauses_b, repository)
        unit_of_work = FailoverConfigUnitOfWork(
            repository,
            audit_log,
            InMemoryConfigUnitOfWork(repo_a, audit_a, pauses_a),
            InMemoryConfigUnitOfWork(repo_b, audit_b, pauses_b),
            pauses,
        )
        return PauseStores(pauses, unit_of_work, audit_log)


async def test_unavailable_pause_store_raises_on_every_call() -> None:
    pauses = InMemoryPauseStore()
    await pauses.apply(make_pause())
    pauses.available = False
    with pytest.raises(StoreUnavailableError):
        await pauses.list()
    with pytest.raises(StoreUnavailableError):
        await pauses.apply(make_pause(version=2))
    pauses.available = True
    assert [record.version for record in await pauses.list()] == [1]


async def test_unavailable_repository_raises_on_every_call() -> None:
    repository = InMemoryConfigRepository()
    await repository.save(make_document(), expected_version=0)
    repository.available = False
    with pytest.raises(StoreUnavailableError):
        await repository.get("contract_alpha", None)
    with pytest.raises(StoreUnavailableError):
        await repository.list()
    with pytest.raises(StoreUnavailableError):
        await repository.save(make_document(version=2), expected_version=1)
    with pytest.raises(StoreUnavailableError):
        await repository.ping()
    repository.available = True
    stored = await repository.get("contract_alpha", None)
    assert stored is not None
    assert stored.version == 1


async def test_unavailable_audit_log_raises_on_every_call() -> None:
    audit_log = InMemoryAuditLog()
    audit_log.available = False
    with pytest.raises(StoreUnavailableError):
        await audit_log.append(make_record())
    with pytest.raises(StoreUnavailableError):
        await audit_log.list(AuditQuery("contract_alpha"))
    audit_log.available = True
    assert await audit_log.list(AuditQuery("contract_alpha")) == []


async def test_repository_can_be_seeded_and_returns_copies() -> None:
    repository = InMemoryConfigRepository([make_document(parameters={"cooldown_seconds": 5})])
    first = await repository.get("contract_alpha", None)
    assert first is not None
    assert first.source == "memory"
    first.parameters["cooldown_seconds"] = 99  # type: ignore[index]
    again = await repository.get("contract_alpha", None)
    assert again is not None
    assert again.parameters == {"cooldown_seconds": 5}


async def test_failover_pause_store_reconciles_a_pause_one_store_missed() -> None:
    primary, fallback = InMemoryPauseStore(), InMemoryPauseStore()
    clock = [0.0]
    repository = FailoverConfigRepository(
        InMemoryConfigRepository(), InMemoryConfigRepository(), monotonic=lambda: clock[0]
    )
    pauses = FailoverPauseStore(primary, fallback, repository)
    primary.available = False
    assert await pauses.apply(make_pause(version=1))  # the fallback alone takes it
    primary.available = True
    clock[0] += 60  # past the primary's retry interval
    (merged,) = await pauses.list()
    assert merged.version == 1
    assert [r.version for r in await primary.list()] == [1]  # copied by the read
    await fallback.apply(make_pause(active=False, version=2))  # newer on one store only
    (merged,) = await pauses.list()
    assert (merged.active, merged.version) == (False, 2)
    assert [(r.active, r.version) for r in await primary.list()] == [(False, 2)]
    primary.available = fallback.available = False
    clock[0] += 60
    with pytest.raises(StoreUnavailableError):
        await pauses.list()


class TestInMemoryOutcomeStore(OutcomeStoreContract):
    @pytest.fixture
    async def store(self) -> OutcomeStore:
        return InMemoryOutcomeStore()
