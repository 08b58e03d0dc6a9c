"""MongoDB primary (SecantusDB) with MySQL fallback (MariaDB): writes land in both, the
service keeps reading and writing while either store is down, a returning primary is
reconciled, and no acknowledged write is ever lost.

SecantusDB is stopped for real (its process terminated and started again on the same port);
MariaDB, shared with other tests, is cut through a TCP proxy instead. The last part drives
the same logic over in-memory stores for the cases real servers cannot stage on demand.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pymongo import AsyncMongoClient
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.failover import FailoverAuditLog, FailoverConfigRepository
from adapters.memory.audit_log import InMemoryAuditLog
from adapters.memory.config_repository import InMemoryConfigRepository
from adapters.mongo import MongoAuditLog, MongoConfigRepository, create_mongo_client
from adapters.sql import MySqlAuditLog, MySqlConfigRepository
from application.ports import (
    AuditLog,
    ConfigRepository,
    StoreUnavailableError,
    VersionConflictError,
)
from domain.config import AuditAction, AuditQuery, AuditRecord, ConfigDocument
from tests.clock import ManualSeconds
from tests.integration.conftest import SecantusServer, TcpProxy, start_secantus

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

STRATEGY = "failover_alpha"
T0 = datetime(2025, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
RETRY_S = 0.2
SELECTION_TIMEOUT_S = 0.5  # the stack's MongoDB client (build_stack)
DRIVER_SERVER_SELECTION_TIMEOUT_S = 30.0
"""pymongo's default ``serverSelectionTimeoutMS`` (30 s; SQLAlchemy's ``pool_timeout`` is 30 s
too): what an operation would wait on a dead store if the adapters did not pass their own."""
OPERATION_BUDGET_S = DRIVER_SERVER_SELECTION_TIMEOUT_S / 2
"""A liveness bound, not a latency target: one operation takes about one selection timeout
(0.5 s) at worst here, a few seconds on a loaded machine; only an operation that waits out
a driver default exceeds it."""
NOTHING_PENDING = {"reconcile": 0, "mirror": 0, "audit_reconcile": 0, "audit_mirror": 0}

T = TypeVar("T")


def doc(version: int, symbol: str | None = None, **parameters: Any) -> ConfigDocument:
    return ConfigDocument(
        strategy_id=STRATEGY,
        symbol=symbol,
        parameters=parameters or {"cooldown_seconds": 10 * version, "enabled": True},
        version=version,
        updated_at=T0 + timedelta(seconds=version),
        updated_by=f"writer{version}",
    )


def record(version: int, symbol: str | None = None) -> AuditRecord:
    return AuditRecord(
        strategy_id=STRATEGY,
        symbol=symbol,
        action=AuditAction.CREATE if version == 1 else AuditAction.UPDATE,
        old_parameters=None,
        new_parameters={"cooldown_seconds": 10 * version},
        changed_by=f"writer{version}",
        changed_at=T0 + timedelta(seconds=version),
        reason=f"change {version}",
        version=version,
    )


async def bounded(call: Awaitable[T]) -> T:
    """Every operation answers, whichever store is down, without waiting out a driver's
    default timeout (:data:`OPERATION_BUDGET_S`)."""
    try:
        return await asyncio.wait_for(call, OPERATION_BUDGET_S)
    except TimeoutError:
        raise AssertionError(
            f"an operation took over {OPERATION_BUDGET_S:.0f} s: a driver default timeout "
            f"({DRIVER_SERVER_SELECTION_TIMEOUT_S:.0f} s) instead of the stack's own?"
        ) from None


@dataclass
class Stack:
    server: SecantusServer
    proxy: TcpProxy
    mongo: MongoConfigRepository
    mongo_audit: MongoAuditLog
    mysql: MySqlConfigRepository
    mysql_audit: MySqlAuditLog
    repo: FailoverConfigRepository
    audit: FailoverAuditLog

    async def write(self, version: int, symbol: str | None = None, expected: int = 0) -> None:
        """What the configuration use case does: save the layer, then audit it."""
        await bounded(self.repo.save(doc(version, symbol), expected))
        await bounded(self.audit.append(record(version, symbol)))

    async def stop_mongo(self) -> None:
        await asyncio.to_thread(self.server.stop)

    async def start_mongo(self) -> None:
        await asyncio.to_thread(self.server.start)

    async def versions(self, store: ConfigRepository) -> dict[str | None, int]:
        return {d.symbol: d.version for d in await store.list(STRATEGY)}

    async def audit_versions(self, log: AuditLog) -> list[int]:
        return [r.version for r in await log.list(AuditQuery(STRATEGY, limit=1000))]


async def build_stack(
    server: SecantusServer, proxy: TcpProxy, engine: AsyncEngine, database: str
) -> tuple[Stack, AsyncMongoClient[dict[str, Any]]]:
    client = create_mongo_client(
        server.uri,
        server_selection_timeout_s=SELECTION_TIMEOUT_S,
        connect_timeout_s=0.5,
        socket_timeout_s=2.0,
    )
    mongo = MongoConfigRepository(client, database)
    mongo_audit = MongoAuditLog(client, database)
    await mongo.ensure_indexes()
    await mongo_audit.ensure_indexes()
    mysql = MySqlConfigRepository(engine)
    mysql_audit = MySqlAuditLog(engine)
    repo = FailoverConfigRepository(mongo, mysql, retry_interval_s=RETRY_S)
    audit = FailoverAuditLog(mongo_audit, mysql_audit, repository=repo)
    stack = Stack(server, proxy, mongo, mongo_audit, mysql, mysql_audit, repo, audit)
    return stack, client


@pytest.fixture(params=["persistent", "wiped"])
async def stack(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    mysql_proxy: TcpProxy,
    mysql_engine_via_proxy: AsyncEngine,
) -> AsyncIterator[Stack]:
    """A dedicated SecantusDB (restarted with its data, or wiped at every restart), MariaDB
    behind a cuttable proxy, and the failover adapters over them."""
    storage = str(tmp_path / "mongo-data") if request.param == "persistent" else ":memory:"
    server = await asyncio.to_thread(start_secantus, tmp_path, storage)
    try:
        built, client = await build_stack(
            server, mysql_proxy, mysql_engine_via_proxy, "test_rs_failover"
        )
        try:
            yield built
        finally:
            await client.close()
    finally:
        await asyncio.to_thread(server.stop)


# --- normal operation -----------------------------------------------------------------------


async def test_writes_land_in_both_stores(stack: Stack) -> None:
    await stack.write(1)
    await stack.write(2, "BTCUSDT")
    await stack.write(3, expected=1)

    expected = {None: 3, "BTCUSDT": 2}
    assert await stack.versions(stack.mongo) == expected
    assert await stack.versions(stack.mysql) == expected
    assert await stack.audit_versions(stack.mongo_audit) == [3, 2, 1]
    assert await stack.audit_versions(stack.mysql_audit) == [3, 2, 1]
    for store in (stack.mongo, stack.mysql):  # identical content, not just versions
        got = await store.get(STRATEGY, None)
        assert got is not None
        assert replace(got, source="") == doc(3)

    got = await stack.repo.get(STRATEGY, None)
    assert got is not None
    assert got.source == "mongodb"
    assert stack.repo.name == "mongodb"
    health = stack.repo.health()
    assert health["status"] == "ok"
    assert health["primary"]["state"] == "up"
    assert health["fallback"]["state"] == "up"
    assert health["pending"] == {
        "reconcile": 0,
        "mirror": 0,
        "audit_reconcile": 0,
        "audit_mirror": 0,
    }


# --- MongoDB down -----------------------------------------------------------------------------


async def test_mongo_down_then_back_is_reconciled(stack: Stack) -> None:
    await stack.write(1)
    await stack.write(2, "BTCUSDT")
    await stack.stop_mongo()

    # Reads continue from MySQL.
    got = await bounded(stack.repo.get(STRATEGY, None))
    assert got is not None
    assert (got.version, got.source) == (1, "mysql")
    assert stack.repo.name == "mysql"
    health = stack.repo.health()
    assert health["status"] == "degraded"
    assert health["primary"]["state"] == "down"
    assert "mongodb" in health["primary"]["last_error"]
    assert health["primary"]["down_since"] is not None
    assert health["fallback"]["state"] == "up"
    assert health["serving"] == "mysql"

    # Writes continue on MySQL only, and are remembered as pending.
    await stack.write(3, expected=1)
    await stack.write(4, "ETHUSDT")
    await stack.write(5, "BTCUSDT", expected=2)
    assert await stack.versions(stack.mysql) == {None: 3, "BTCUSDT": 5, "ETHUSDT": 4}
    health = stack.repo.health()
    assert health["pending"]["reconcile"] == 3
    assert health["pending"]["audit_reconcile"] == 3
    assert health["primary"]["behind"] is True
    listed = await bounded(stack.repo.list(STRATEGY))
    assert {d.source for d in listed} == {"mysql"}
    assert await bounded(stack.audit.list(AuditQuery(STRATEGY))) == await stack.mysql_audit.list(
        AuditQuery(STRATEGY)
    )
    assert [r.version for r in await stack.audit.list(AuditQuery(STRATEGY))] == [5, 4, 3, 2, 1]
    await bounded(stack.repo.ping())  # ready: one store answers

    # MongoDB returns: reconciliation copies everything it missed.
    await stack.start_mongo()
    report = await bounded(stack.repo.reconcile())
    # (A wiped primary also gets what it had before; here every layer changed meanwhile.)
    assert sorted(report.copied_to_primary) == [
        f"{STRATEGY}/BTCUSDT",
        f"{STRATEGY}/ETHUSDT",
        f"{STRATEGY}/global",
    ]
    assert await stack.versions(stack.mongo) == {None: 3, "BTCUSDT": 5, "ETHUSDT": 4}
    for symbol in (None, "BTCUSDT", "ETHUSDT"):
        in_mongo = await stack.mongo.get(STRATEGY, symbol)
        in_mysql = await stack.mysql.get(STRATEGY, symbol)
        assert in_mongo is not None
        assert in_mysql is not None
        assert replace(in_mongo, source="") == replace(in_mysql, source="")
    assert await stack.audit_versions(stack.mongo_audit) == [5, 4, 3, 2, 1]
    assert await stack.audit_versions(stack.mysql_audit) == [5, 4, 3, 2, 1]
    assert report.audit_copied_to_primary in (3, 5)  # 5 if the primary came back wiped
    assert report.audit_copied_to_fallback == 0

    health = stack.repo.health()
    assert health["status"] == "ok"
    assert health["primary"]["behind"] is False
    assert health["pending"] == {
        "reconcile": 0,
        "mirror": 0,
        "audit_reconcile": 0,
        "audit_mirror": 0,
    }
    got = await stack.repo.get(STRATEGY, "BTCUSDT")
    assert got is not None
    assert (got.version, got.source) == (5, "mongodb")

    # And it serves writes again, mirrored.
    await stack.write(6, expected=3)
    assert (await stack.versions(stack.mongo))[None] == 6
    assert (await stack.versions(stack.mysql))[None] == 6


async def test_returning_mongo_is_reconciled_by_the_next_operation(stack: Stack) -> None:
    await stack.write(1)
    await stack.stop_mongo()
    await stack.write(2, expected=1)
    await stack.start_mongo()
    await asyncio.sleep(RETRY_S * 1.5)  # past the retry interval

    got = await bounded(stack.repo.get(STRATEGY, None))  # no explicit reconcile()
    assert got is not None
    assert (got.version, got.source) == (2, "mongodb")
    assert await stack.versions(stack.mongo) == {None: 2}
    assert await stack.audit_versions(stack.mongo_audit) == [2, 1]
    assert stack.repo.health()["status"] == "ok"


async def test_check_health_probes_both_stores_within_their_timeouts(stack: Stack) -> None:
    assert (await stack.repo.check_health())["status"] == "ok"
    await stack.stop_mongo()
    health = await bounded(stack.repo.check_health(timeout_s=1.0))
    # The dead primary's probe ended at the client's own selection timeout (the driver
    # names the one it applied) or, on a machine too loaded for that, at the probe's.
    assert re.search(
        rf"Timeout: {SELECTION_TIMEOUT_S}s,|ping timed out \(1.0s\)",
        str(health["primary"]["last_error"]),
    ), health["primary"]
    assert health["primary"]["state"] == "down"
    assert health["fallback"]["state"] == "up"
    assert health["status"] == "degraded"
    await stack.start_mongo()
    health = await stack.repo.check_health(timeout_s=5.0)
    assert health["primary"]["state"] == "up"
    assert health["status"] == "ok"


async def test_a_dead_mongo_is_skipped_until_the_retry_interval(stack: Stack) -> None:
    """A dead primary costs one selection timeout per retry interval, not one per request:
    on a clock of the test's own, the primary's attempts (each a failure while it is down)
    are counted."""
    clock = ManualSeconds()
    repo = FailoverConfigRepository(
        stack.mongo, stack.mysql, retry_interval_s=RETRY_S, monotonic=clock
    )
    await stack.write(1)
    await stack.stop_mongo()
    got = await bounded(repo.get(STRATEGY, None))  # discovers it (one selection timeout)
    assert got is not None
    assert got.source == "mysql"
    assert repo.health()["primary"]["failures"] == 1
    for _ in range(20):
        got = await bounded(repo.get(STRATEGY, None))
        assert got is not None
        assert got.source == "mysql"
    assert repo.health()["primary"]["failures"] == 1  # skipped: not asked while down
    clock.advance(RETRY_S)
    got = await bounded(repo.get(STRATEGY, None))  # the interval is over: asked once more
    assert got is not None
    assert got.source == "mysql"
    assert repo.health()["primary"]["failures"] == 2
    await stack.start_mongo()
    clock.advance(RETRY_S)
    await bounded(repo.get(STRATEGY, None))  # (a wiped primary answers None: not checked)
    assert repo.health()["primary"]["state"] == "up"


# --- MySQL down -------------------------------------------------------------------------------


async def test_mirror_failure_never_fails_the_write(stack: Stack) -> None:
    await stack.write(1)
    await stack.proxy.cut()

    await stack.write(2, expected=1)  # acknowledged by MongoDB alone
    await stack.write(3, "BTCUSDT")
    assert await stack.versions(stack.mongo) == {None: 2, "BTCUSDT": 3}
    health = stack.repo.health()
    assert health["status"] == "degraded"
    assert health["fallback"]["state"] == "down"
    assert "mysql" in health["fallback"]["last_error"]
    assert health["pending"]["mirror"] == 2
    assert health["pending"]["audit_mirror"] == 2
    assert health["serving"] == "mongodb"

    await stack.proxy.start()
    await asyncio.sleep(RETRY_S * 1.5)
    await stack.write(4, "ETHUSDT")  # the next write retries the queued mirrors
    assert await stack.versions(stack.mysql) == {None: 2, "BTCUSDT": 3, "ETHUSDT": 4}
    assert await stack.audit_versions(stack.mysql_audit) == [4, 3, 2, 1]
    health = stack.repo.health()
    assert health["status"] == "ok"
    assert health["pending"]["mirror"] == 0
    assert health["pending"]["audit_mirror"] == 0


async def test_queued_mirrors_reach_mysql_before_it_serves_alone(stack: Stack) -> None:
    """MySQL missed a write (down), then MongoDB fails: MySQL must not serve, or hand out
    versions, from before that write."""
    await stack.write(1)
    await stack.proxy.cut()
    await stack.write(2, expected=1)  # MongoDB only; queued for MySQL
    await stack.proxy.start()
    await stack.stop_mongo()
    await asyncio.sleep(RETRY_S * 1.5)

    got = await bounded(stack.repo.get(STRATEGY, None))
    assert got is not None
    assert (got.version, got.source) == (2, "mysql")
    await stack.write(3, expected=2)  # compare-and-set against version 2, on MySQL
    assert await stack.audit_versions(stack.mysql_audit) == [3, 2, 1]

    await stack.start_mongo()
    await bounded(stack.repo.reconcile())
    assert await stack.versions(stack.mongo) == {None: 3}
    assert await stack.audit_versions(stack.mongo_audit) == [3, 2, 1]


# --- both down --------------------------------------------------------------------------------


async def test_both_down_is_unavailable_and_nothing_acknowledged_is_lost(stack: Stack) -> None:
    await stack.write(1)
    await stack.write(2, "BTCUSDT")
    await stack.stop_mongo()
    await stack.proxy.cut()

    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: stack.repo.get(STRATEGY, None),
        lambda: stack.repo.list(),
        lambda: stack.repo.save(doc(3), 1),
        lambda: stack.audit.append(record(3)),
        lambda: stack.audit.list(AuditQuery(STRATEGY)),
        lambda: stack.repo.ping(),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailableError, match="both configuration stores"):
            await bounded(call())
    health = stack.repo.health()
    assert health["status"] == "down"
    assert health["primary"]["state"] == "down"
    assert health["fallback"]["state"] == "down"

    await stack.proxy.start()
    await stack.start_mongo()
    await asyncio.sleep(RETRY_S * 1.5)
    await bounded(stack.repo.reconcile())
    for store in (stack.mongo, stack.mysql):
        assert await stack.versions(store) == {None: 1, "BTCUSDT": 2}
    for log in (stack.mongo_audit, stack.mysql_audit):
        assert await stack.audit_versions(log) == [2, 1]
    assert stack.repo.health()["status"] == "ok"


async def test_flapping_primary_loses_no_acknowledged_write(stack: Stack) -> None:
    acknowledged: list[int] = []
    current: dict[str | None, int] = {}
    plan: list[tuple[str | None, str]] = [
        (None, "up"),
        ("BTCUSDT", "up"),
        (None, "stop"),
        ("ETHUSDT", "down"),
        (None, "start"),
        ("BTCUSDT", "up"),
        ("ETHUSDT", "stop"),
        (None, "down"),
        ("BTCUSDT", "start"),
        (None, "up"),
    ]
    for version, (symbol, event) in enumerate(plan, start=1):
        if event == "stop":
            await stack.stop_mongo()
        elif event == "start":
            await stack.start_mongo()
            await asyncio.sleep(RETRY_S * 1.5)
        await stack.write(version, symbol, expected=current.get(symbol, 0))
        acknowledged.append(version)
        current[symbol] = version

    await bounded(stack.repo.reconcile())
    for store in (stack.mongo, stack.mysql):
        assert await stack.versions(store) == current
    for log in (stack.mongo_audit, stack.mysql_audit):
        assert sorted(await stack.audit_versions(log)) == acknowledged
    assert stack.repo.health()["status"] == "ok"


# --- over in-memory stores: the cases real servers cannot stage on demand ----------------------


class CountingRepository(InMemoryConfigRepository):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.calls = 0

    async def _enter(self) -> None:
        self.calls += 1
        await super()._enter()


@pytest.fixture
def memory_pair() -> tuple[CountingRepository, CountingRepository]:
    return CountingRepository("mongodb"), CountingRepository("mysql")


def failover(
    primary: ConfigRepository, fallback: ConfigRepository, **kwargs: Any
) -> FailoverConfigRepository:
    return FailoverConfigRepository(primary, fallback, retry_interval_s=60.0, **kwargs)


class TestFailoverLogic:
    async def test_first_use_adopts_writes_a_previous_process_left_on_the_fallback(
        self, memory_pair: tuple[CountingRepository, CountingRepository]
    ) -> None:
        primary, fallback = memory_pair
        await primary.save(doc(1), 0)
        await fallback.save(doc(1), 0)
        await fallback.save(doc(2), 1)  # acknowledged while the primary was down
        await fallback.save(doc(3, "BTCUSDT"), 0)
        repo = failover(primary, fallback)
        got = await repo.get(STRATEGY, None)
        assert got is not None
        assert (got.version, got.source) == (2, "mongodb")
        assert await primary.get(STRATEGY, "BTCUSDT") is not None
        assert repo.last_reconcile is not None
        assert len(repo.last_reconcile.copied_to_primary) == 2

    async def test_a_down_primary_is_skipped_until_the_retry_interval(
        self, memory_pair: tuple[CountingRepository, CountingRepository]
    ) -> None:
        primary, fallback = memory_pair
        now = [0.0]
        repo = FailoverConfigRepository(
            primary, fallback, retry_interval_s=5.0, monotonic=lambda: now[0]
        )
        await repo.save(doc(1), 0)
        primary.available = False
        assert (await repo.get(STRATEGY, None)) is not None
        calls = primary.calls
        for _ in range(10):
            got = await repo.get(STRATEGY, None)
            assert got is not None
            assert got.source == "mysql"
        assert primary.calls == calls  # not asked while down
        primary.available = True
        now[0] += 5.0
        got = await repo.get(STRATEGY, None)
        assert got is not None
        assert got.source == "mongodb"
        assert repo.health()["primary"]["state"] == "up"

    async def test_mirror_installs_by_version_when_the_fallback_lags(
        self, memory_pair: tuple[CountingRepository, CountingRepository]
    ) -> None:
        primary, fallback = memory_pair
        await primary.save(doc(1), 0)
        await primary.save(doc(2), 1)  # the fallback never saw 1 or 2
        repo = failover(primary, fallback)
        repo._needs_full_sync = False  # as if it had been running all along
        await repo.save(doc(3), 2)
        got = await fallback.get(STRATEGY, None)
        assert got is not None
        assert got.version == 3
        assert repo.health()["pending"]["mirror"] == 0

    async def test_the_mirror_queue_is_bounded_and_a_full_reconcile_covers_the_overflow(
        self, memory_pair: tuple[CountingRepository, CountingRepository]
    ) -> None:
        primary, fallback = memory_pair
        repo = failover(primary, fallback, max_pending_mirror=2)
        await repo.reconcile()
        fallback.available = False
        for version, symbol in enumerate(("AUSDT", "BUSDT", "CUSDT", "DUSDT"), start=1):
            await repo.save(doc(version, symbol), 0)
        health = repo.health()
        assert health["pending"]["mirror"] == 2
        assert health["needs_reconcile"] is True
        fallback.available = True
        await repo.reconcile()
        assert {d.symbol for d in await fallback.list()} == {"AUSDT", "BUSDT", "CUSDT", "DUSDT"}
        assert repo.health()["status"] == "ok"

    async def test_same_version_with_different_content_is_reported(
        self, memory_pair: tuple[CountingRepository, CountingRepository]
    ) -> None:
        primary, fallback = memory_pair
        await primary.save(doc(1, cooldown_seconds=1), 0)
        await fallback.save(doc(1, cooldown_seconds=2), 0)  # a split-brain leftover
        repo = failover(primary, fallback)
        report = await repo.reconcile()
        assert report.conflicts == [f"{STRATEGY}/global"]
        assert repo.health()["conflicts"] == 1
        got = await repo.get(STRATEGY, None)
        assert got is not None
        assert got.parameters == {"cooldown_seconds": 1}  # the primary's is kept

    async def test_version_conflicts_pass_through_and_are_not_mirrored(
        self, memory_pair: tuple[CountingRepository, CountingRepository]
    ) -> None:
        primary, fallback = memory_pair
        repo = failover(primary, fallback)
        await repo.save(doc(1), 0)
        with pytest.raises(VersionConflictError):
            await repo.save(doc(2), 0)
        primary.available = False
        with pytest.raises(VersionConflictError):  # the fallback's CAS, equally strict
            await repo.save(doc(2), 0)
        got = await fallback.get(STRATEGY, None)
        assert got is not None
        assert got.version == 1

    async def test_audit_without_a_repository_reconciles_itself(self) -> None:
        primary, fallback = InMemoryAuditLog(), InMemoryAuditLog()
        audit = FailoverAuditLog(primary, fallback, retry_interval_s=0.0)
        await audit.append(record(1))
        primary.available = False
        await audit.append(record(2))
        assert audit.pending_reconcile == 1
        assert [r.version for r in await audit.list(AuditQuery(STRATEGY))] == [2, 1]
        primary.available = True
        assert await audit.reconcile() == (1, 0)
        assert [r.version for r in await primary.list(AuditQuery(STRATEGY))] == [2, 1]
        assert audit.needs_reconcile is False
        assert await audit.reconcile([STRATEGY]) == (0, 0)  # idempotent: no duplicates
