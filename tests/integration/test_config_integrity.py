"""Issue 10: configuration store integrity under concurrency and faults, on real stores.

Every "replica" here is a cache + the config and pause use cases over its **own** engine or
client (its own connection pool), as separate service processes would have, on one real
MariaDB database, one SQLite file or one SecantusDB (Mongo wire) database. The
multi-process versions over the running service are in ``test_config_integrity_processes.py``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.failover import FailoverAuditLog, FailoverConfigRepository
from adapters.mongo.config_store import (
    SEQUENCE_COLLECTION,
    MongoAuditLog,
    MongoConfigRepository,
    MongoConfigUnitOfWork,
    MongoPauseStore,
    create_mongo_client,
    ensure_indexes,
)
from adapters.sql.config_store import (
    SqlAuditLog,
    SqlConfigRepository,
    SqlConfigUnitOfWork,
    SqlPauseStore,
    create_sql_engine,
)
from adapters.sql.migrations import migrate
from adapters.system_clock import SystemClock
from application.config_admin import ConfigAdmin, ConfigWriteResult
from application.config_cache import EffectiveConfigCache
from application.ports import (
    AuditLog,
    ConfigRepository,
    ConfigUnitOfWork,
    PauseStore,
    VersionConflictError,
)
from application.signal_pauses import PauseWriteResult, SignalPauseAdmin
from domain.config import AuditAction, AuditQuery, AuditRecord
from domain.governance import Pause
from domain.params import ParamValidationError
from domain.strategies.registry import STRATEGY_PARAMS
from tests.unit.test_signal_pauses import (
    assert_one_pause_won,
    assert_trail_is_chained,
    race_pauses,
    race_switches,
    target_trail,
)

STRATEGY = "trade_momentum"


@dataclass
class Replica:
    repository: ConfigRepository
    audit: AuditLog
    cache: EffectiveConfigCache
    admin: ConfigAdmin
    pauses: SignalPauseAdmin


ReplicaFactory = Callable[[], Awaitable[Replica]]


def _replica(
    repository: ConfigRepository,
    audit: AuditLog,
    uow: ConfigUnitOfWork,
    pauses: PauseStore | None = None,
) -> Replica:
    clock = SystemClock()
    cache = EffectiveConfigCache(STRATEGY_PARAMS, repository, clock, pause_store=pauses)
    return Replica(
        repository,
        audit,
        cache,
        ConfigAdmin(cache, uow, audit, clock),
        SignalPauseAdmin(cache, uow, clock),
    )


@pytest.fixture(params=["mysql", "sqlite", "mongodb"])
async def replicas(
    request: pytest.FixtureRequest,
    mysql_url: str,
    mysql_engine: AsyncEngine,  # migrated, tables emptied
    tmp_path: Path,
    secantus_uri: str,
    mongo_database_name: str,
) -> AsyncIterator[ReplicaFactory]:
    """Builds replicas of one store, each with its own connection pool."""
    closers: list[Callable[[], Awaitable[None]]] = []
    store = request.param
    sqlite_path = tmp_path / "config.db"
    if store == "sqlite":
        engine = create_sql_engine(str(sqlite_path))
        await migrate(engine)
        await engine.dispose()
    if store == "mongodb":
        client: AsyncMongoClient[dict[str, Any]] = create_mongo_client(secantus_uri)
        await ensure_indexes(client, mongo_database_name)
        closers.append(client.close)

    async def build() -> Replica:
        if store == "mongodb":
            mongo = create_mongo_client(secantus_uri)
            closers.append(mongo.close)
            return _replica(
                MongoConfigRepository(mongo, mongo_database_name),
                MongoAuditLog(mongo, mongo_database_name),
                MongoConfigUnitOfWork(mongo, mongo_database_name),
                MongoPauseStore(mongo, mongo_database_name),
            )
        engine = create_sql_engine(mysql_url if store == "mysql" else str(sqlite_path))
        closers.append(engine.dispose)
        return _replica(
            SqlConfigRepository(engine),
            SqlAuditLog(engine),
            SqlConfigUnitOfWork(engine),
            SqlPauseStore(engine),
        )

    yield build
    if store == "mongodb":
        drop = create_mongo_client(secantus_uri)
        await drop.drop_database(mongo_database_name)
        await drop.close()
    for close in reversed(closers):
        await close()


async def _outcome(write: Awaitable[ConfigWriteResult]) -> ConfigWriteResult | Exception:
    try:
        return await write
    except (ParamValidationError, VersionConflictError) as error:
        return error


async def _full_audit(replica: Replica) -> list[AuditRecord]:
    return await replica.audit.list(AuditQuery(STRATEGY, None, 100_000))


async def test_cross_layer_race_acknowledges_exactly_one_of_each_conflicting_pair(
    replicas: ReplicaFactory,
) -> None:
    a, b = await replicas(), await replicas()
    rounds = 10
    for round_ in range(rounds):
        symbol = f"SYM{round_}"
        outcomes = await asyncio.gather(
            _outcome(
                a.admin.set_config(
                    STRATEGY, None, {"price_weight": 0, "quantity_weight": 0}, "a", "race"
                )
            ),
            _outcome(b.admin.set_config(STRATEGY, symbol, {"maker_weight": 0}, "b", "race")),
        )
        acknowledged = [o for o in outcomes if isinstance(o, ConfigWriteResult)]
        refused = [o for o in outcomes if isinstance(o, ParamValidationError)]
        assert (len(acknowledged), len(refused)) == (1, 1), outcomes
        # The effective config (read fresh from the store) is valid and contains the write.
        reader = await replicas()
        await reader.cache.refresh()
        effective = reader.cache.effective(STRATEGY, symbol)
        assert reader.cache.stats.invalid_stored_configs == 0
        [won] = acknowledged
        for name, value in won.config.parameters.items():
            assert effective.params.to_mapping()[name] == value
        # Reset for the next round: no global layer, no override.
        if won.config.symbol is None:
            await a.admin.delete_config(STRATEGY, None, "a", "reset")
        else:
            await b.admin.delete_config(STRATEGY, symbol, "b", "reset")


async def test_concurrent_writes_over_three_layers_get_unique_versions_and_one_audit_each(
    replicas: ReplicaFactory,
) -> None:
    # SQLite is the embedded store of one process (``make run``): one replica there.
    fleet = [await replicas() for _ in range(3)]
    if (
        isinstance(fleet[0].repository, SqlConfigRepository)
        and fleet[0].repository.name == "sqlite"
    ):
        fleet = [fleet[0]] * 3
    layers: list[str | None] = [None, "BTCUSDT", "ETHUSDT"]
    writes = [
        fleet[i % 3].admin.set_config(
            STRATEGY,
            layers[i % 3],
            {"momentum_window": 5 + i % 45},
            f"writer-{i}",
            f"write {i}",
        )
        for i in range(200)
    ]
    outcomes = await asyncio.gather(*(_outcome(w) for w in writes))
    acknowledged = [o for o in outcomes if isinstance(o, ConfigWriteResult)]
    assert len(acknowledged) >= 190, Counter(type(o).__name__ for o in outcomes)
    versions = [r.config.layer_version for r in acknowledged]
    assert len(set(versions)) == len(versions)  # unique across all three layers
    records = await _full_audit(fleet[0])
    audited = Counter(r.version for r in records)
    assert all(audited[v] == 1 for v in versions)  # exactly one audit per acknowledged write
    assert len(records) == len(acknowledged)  # and none for a refused one
    stored = await fleet[0].repository.list(STRATEGY)
    assert max(d.version for d in stored) == max(versions)


async def test_every_stored_layer_version_has_exactly_one_audit_record(
    replicas: ReplicaFactory,
) -> None:
    replica = await replicas()
    await replica.admin.set_config(STRATEGY, None, {"momentum_window": 20}, "t", "r")
    await replica.admin.set_config(STRATEGY, "BTCUSDT", {"momentum_window": 30}, "t", "r")
    await replica.admin.delete_config(STRATEGY, "BTCUSDT", "t", "r")
    await replica.admin.rollback(STRATEGY, "BTCUSDT", 2, "t", "r")
    audited = Counter(r.version for r in await _full_audit(replica))
    for document in await replica.repository.list(STRATEGY):
        assert audited[document.version] == 1
    assert sorted(audited) == [1, 2, 3, 4]


async def test_racing_pauses_of_one_target_on_four_replicas_store_one_pause(
    replicas: ReplicaFactory,
) -> None:
    fleet = [await replicas() for _ in range(4)]
    admins = [replica.pauses for replica in fleet]
    targets = [(STRATEGY, "BTCUSDT"), (None, None), (STRATEGY, None), (None, "ETHUSDT")]
    for i, (strategy_id, symbol) in enumerate(targets):
        # Some sent at once, some while others commit (the old bug's two windows).
        results = await race_pauses(admins, strategy_id, symbol, 12, stagger_s=0.001 * i)
        assert_one_pause_won(results, await target_trail(fleet[0].audit, strategy_id, symbol))


async def test_racing_pauses_and_resumes_on_four_replicas_leave_a_chained_audit_trail(
    replicas: ReplicaFactory,
) -> None:
    fleet = [await replicas() for _ in range(4)]
    admins = [replica.pauses for replica in fleet]
    applied = 0
    for _ in range(4):
        outcomes = await race_switches(admins, STRATEGY, "ETHUSDT", 16)
        applied += sum(isinstance(o, PauseWriteResult) and o.applied for o in outcomes)
    trail = await target_trail(fleet[0].audit, STRATEGY, "ETHUSDT")
    assert len(trail) == applied
    assert_trail_is_chained(trail)
    reader = fleet[-1].cache
    await reader.load_pauses()
    stored = reader.pause_record(Pause(STRATEGY, "ETHUSDT"))
    assert stored is not None
    assert (stored.version, {"paused": stored.active}) == (
        trail[-1].version,
        trail[-1].new_parameters,
    )


async def test_appending_an_audit_record_twice_stores_it_once(replicas: ReplicaFactory) -> None:
    replica = await replicas()
    result = await replica.admin.set_config(STRATEGY, None, {"momentum_window": 20}, "t", "r")
    [record] = await _full_audit(replica)
    assert record.version == result.config.layer_version
    await asyncio.gather(*(replica.audit.append(record) for _ in range(5)))
    assert await _full_audit(replica) == [record]


async def test_mongo_outbox_left_by_a_crash_is_completed_by_the_next_reader(
    secantus_uri: str, mongo_database_name: str
) -> None:
    client: AsyncMongoClient[dict[str, Any]] = create_mongo_client(secantus_uri)
    try:
        await ensure_indexes(client, mongo_database_name)
        uow = MongoConfigUnitOfWork(client, mongo_database_name)
        repository = MongoConfigRepository(client, mongo_database_name)
        audit = MongoAuditLog(client, mongo_database_name)
        replica = _replica(repository, audit, uow)
        await replica.admin.set_config(STRATEGY, None, {"momentum_window": 20}, "t", "r")
        # A process killed right after its commit: the outbox is stored, nothing applied.
        sequences = client[mongo_database_name][SEQUENCE_COLLECTION]
        pending = {
            "version": 2,
            "document": {
                "strategy_id": STRATEGY,
                "symbol": "BTCUSDT",
                "parameters": {"momentum_window": 40},
                "version": 2,
                "updated_at": (await repository.list(STRATEGY))[0].updated_at,
                "updated_by": "killed",
            },
            "record": {
                "strategy_id": STRATEGY,
                "symbol": "BTCUSDT",
                "action": AuditAction.CREATE.value,
                "old_parameters": None,
                "new_parameters": {"momentum_window": 40},
                "changed_by": "killed",
                "changed_at": (await repository.list(STRATEGY))[0].updated_at,
                "reason": "crash",
                "version": 2,
            },
        }
        await sequences.update_one({"_id": STRATEGY}, {"$set": {"version": 2, "pending": pending}})
        # A restarted replica's first refresh completes it.
        restarted = _replica(repository, audit, uow)
        await restarted.cache.refresh()
        assert restarted.cache.effective(STRATEGY, "BTCUSDT").version == 2
        assert sorted(r.version for r in await _full_audit(restarted)) == [1, 2]
        assert (await sequences.find_one({"_id": STRATEGY}) or {}).get("pending") is None
        # And the sequence goes on from there.
        result = await restarted.admin.set_config(
            STRATEGY, "ETHUSDT", {"momentum_window": 50}, "t", "r"
        )
        assert result.config.layer_version == 3
    finally:
        await client.drop_database(mongo_database_name)
        await client.close()


async def test_two_replicas_reconciling_at_once_copy_each_audit_record_once(
    secantus_uri: str, mongo_database_name: str, mysql_url: str, mysql_engine: AsyncEngine
) -> None:
    """After a failover (writes acknowledged by MySQL alone), both replicas reconcile at the
    same moment: zero duplicate audit records in either store."""
    fallback_engine = create_sql_engine(mysql_url)
    mysql_repository, mysql_audit = (
        SqlConfigRepository(fallback_engine),
        SqlAuditLog(fallback_engine),
    )
    mysql_replica = _replica(mysql_repository, mysql_audit, SqlConfigUnitOfWork(fallback_engine))
    for i in range(30):
        symbol = None if i % 3 == 0 else f"S{i % 3}"
        await mysql_replica.admin.set_config(
            STRATEGY, symbol, {"momentum_window": 10 + i}, "t", "r"
        )
    clients = [create_mongo_client(secantus_uri) for _ in range(2)]
    engines = [create_sql_engine(mysql_url) for _ in range(2)]
    try:
        await ensure_indexes(clients[0], mongo_database_name)
        pairs = []
        for client, engine in zip(clients, engines, strict=True):
            repository = FailoverConfigRepository(
                MongoConfigRepository(client, mongo_database_name), SqlConfigRepository(engine)
            )
            audit = FailoverAuditLog(
                MongoAuditLog(client, mongo_database_name),
                SqlAuditLog(engine),
                repository=repository,
            )
            pairs.append((repository, audit))
        await asyncio.gather(*(repository.reconcile() for repository, _ in pairs))
        mongo_records = await MongoAuditLog(clients[0], mongo_database_name).list(
            AuditQuery(STRATEGY, None, 100_000)
        )
        mysql_records = await mysql_audit.list(AuditQuery(STRATEGY, None, 100_000))
        for records in (mongo_records, mysql_records):
            assert sorted(r.version for r in records) == list(range(1, 31))
        mongo_layers = await MongoConfigRepository(clients[0], mongo_database_name).list(STRATEGY)
        assert {(d.symbol, d.version) for d in mongo_layers} == {
            (d.symbol, d.version) for d in await mysql_repository.list(STRATEGY)
        }
    finally:
        await clients[0].drop_database(mongo_database_name)
        for client in clients:
            await client.close()
        for engine in [*engines, fallback_engine]:
            await engine.dispose()
