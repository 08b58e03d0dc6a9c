"""The OutcomeStore contract on the real stores: MariaDB, SQLite, SecantusDB (MongoDB wire)
and the failover pair over MongoDB + MariaDB, plus the schema of migration 0004."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from sqlalchemy import delete, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.mongo.outcome_store import MongoOutcomeStore
from adapters.outcome_failover import FailoverOutcomeStore
from adapters.sql.outcome_store import OUTCOME_TABLE, SqlOutcomeStore
from application.ports import OutcomeStore
from tests.contract.outcome_store_contract import OutcomeStoreContract, make_outcome


async def _emptied(engine: AsyncEngine) -> SqlOutcomeStore:
    async with engine.begin() as conn:
        await conn.execute(delete(OUTCOME_TABLE))
    return SqlOutcomeStore(engine)


@pytest.fixture
async def mongo_outcomes(
    mongo_client: AsyncMongoClient[dict[str, Any]], mongo_database_name: str
) -> AsyncIterator[MongoOutcomeStore]:
    store = MongoOutcomeStore(mongo_client, mongo_database_name)
    await store.ensure_indexes()
    yield store
    await mongo_client.drop_database(mongo_database_name)


class TestMySqlOutcomeStore(OutcomeStoreContract):
    @pytest.fixture
    async def store(self, mysql_engine: AsyncEngine) -> OutcomeStore:
        return await _emptied(mysql_engine)


class TestSqliteOutcomeStore(OutcomeStoreContract):
    @pytest.fixture
    async def store(self, sqlite_engine: AsyncEngine) -> OutcomeStore:
        return await _emptied(sqlite_engine)


class TestMongoOutcomeStore(OutcomeStoreContract):
    @pytest.fixture
    async def store(self, mongo_outcomes: MongoOutcomeStore) -> OutcomeStore:
        return mongo_outcomes


class TestFailoverOutcomeStore(OutcomeStoreContract):
    @pytest.fixture
    async def store(
        self, mongo_outcomes: MongoOutcomeStore, mysql_engine: AsyncEngine
    ) -> OutcomeStore:
        return FailoverOutcomeStore(mongo_outcomes, await _emptied(mysql_engine))


async def test_failover_mirrors_every_record_to_mysql(
    mongo_outcomes: MongoOutcomeStore, mysql_engine: AsyncEngine
) -> None:
    mysql = await _emptied(mysql_engine)
    store = FailoverOutcomeStore(mongo_outcomes, mysql)
    records = [make_outcome(n, horizons=n % 5) for n in range(5)]
    await store.save(records)
    assert await mysql.recent(None, None, 10) == list(reversed(records))
    assert await mongo_outcomes.recent(None, None, 10) == list(reversed(records))


def _columns(sync_conn: Connection) -> dict[str, Any]:
    inspector = inspect(sync_conn)
    columns = {
        c["name"]: (type(c["type"]).__name__.upper(), c["nullable"])
        for c in inspector.get_columns(OUTCOME_TABLE.name)
    }
    uniques = {
        tuple(u["column_names"]) for u in inspector.get_unique_constraints("signal_outcomes")
    }
    uniques |= {
        tuple(str(n) for n in i["column_names"])
        for i in inspector.get_indexes("signal_outcomes")
        if i["unique"]
    }
    indexes = {
        tuple(str(n) for n in i["column_names"])
        for i in inspector.get_indexes("signal_outcomes")
        if not i["unique"]
    }
    return {
        "columns": set(columns),
        "nullable": {k for k, v in columns.items() if v[1]},
        "uniques": uniques,
        "indexes": indexes,
    }


@pytest.mark.parametrize("dialect", ["mysql", "sqlite"])
async def test_migration_0004_builds_the_table_the_store_queries(
    dialect: str, mysql_engine: AsyncEngine, sqlite_engine: AsyncEngine
) -> None:
    engine = mysql_engine if dialect == "mysql" else sqlite_engine
    async with engine.connect() as conn:
        schema = await conn.run_sync(_columns)
    assert schema["columns"] == {c.name for c in OUTCOME_TABLE.columns}
    assert schema["nullable"] == set()
    assert ("signal_id",) in schema["uniques"]
    assert {("strategy_id", "signal_time_ms"), ("recorded_at_ms",)} <= schema["indexes"]
