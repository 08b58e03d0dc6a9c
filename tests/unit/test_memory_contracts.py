"""The port contract suites, run against the in-memory adapters (plus their failure switch)."""

from __future__ import annotations

import pytest

from adapters.memory.audit_log import InMemoryAuditLog
from adapters.memory.config_repository import InMemoryConfigRepository
from application.ports import AuditLog, ConfigRepository, StoreUnavailableError
from tests.contract.audit_log_contract import AuditLogContract, make_record
from tests.contract.config_repository_contract import ConfigRepositoryContract, make_document

pytestmark = pytest.mark.unit


class TestInMemoryConfigRepository(ConfigRepositoryContract):
    @pytest.fixture
    async def repository(self) -> ConfigRepository:
        return InMemoryConfigRepository()


class TestInMemoryAuditLog(AuditLogContract):
    @pytest.fixture
    async def audit_log(self) -> AuditLog:
        return InMemoryAuditLog()


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
        await audit_log.list("contract_alpha")
    audit_log.available = True
    assert await audit_log.list("contract_alpha") == []


async def test_repository_can_be_seeded_and_returns_copies() -> None:
    repository = InMemoryConfigRepository([make_document(parameters={"cooldown_seconds": 5})])
    first = await repository.get("contract_alpha", None)
    assert first is not None
    assert first.source == "memory"
    first.parameters["cooldown_seconds"] = 99  # type: ignore[index]
    again = await repository.get("contract_alpha", None)
    assert again is not None
    assert again.parameters == {"cooldown_seconds": 5}
