"""The configuration stores against real servers: MongoDB (SecantusDB), MySQL (MariaDB),
SQLite (a temporary file) and the failover pair of MongoDB and MySQL with both up. Each runs
the shared port contracts, plus what is specific to it: the stored document shape, the
shipped schema, and failures reported as unavailability."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import Int64
from pymongo import AsyncMongoClient
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.failover import FailoverAuditLog, FailoverConfigRepository
from adapters.mongo import (
    AUDIT_COLLECTION,
    GLOBAL_COLLECTION,
    SYMBOL_COLLECTION,
    MongoAuditLog,
    MongoConfigRepository,
    MongoPauseStore,
    create_mongo_client,
)
from adapters.mongo import ensure_indexes as ensure_mongo_indexes
from adapters.mongo.config_store import MongoConfigUnitOfWork
from adapters.sql import (
    TABLES,
    MySqlAuditLog,
    MySqlConfigRepository,
    SqlAuditLog,
    SqlConfigRepository,
    SqlConfigUnitOfWork,
    SqlPauseStore,
    create_sql_engine,
    migrate,
)
from adapters.sql.migrations import SCHEMA_MIGRATIONS, shipped_migrations
from application.ports import AuditLog, ConfigRepository, StoreUnavailableError
from domain.config import AuditAction, AuditQuery, AuditRecord, ConfigDocument
from tests.contract.audit_log_contract import AuditLogContract
from tests.contract.config_repository_contract import ConfigRepositoryContract
from tests.contract.pause_store_contract import PauseStoreContract, PauseStores
from tests.integration.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

T0 = datetime(2025, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)


def document(
    symbol: str | None = None, version: int = 1, parameters: dict[str, Any] | None = None
) -> ConfigDocument:
    return ConfigDocument(
        strategy_id="store_alpha",
        symbol=symbol,
        parameters={"cooldown_seconds": 30} if parameters is None else parameters,
        version=version,
        updated_at=T0 + timedelta(seconds=version),
        updated_by=f"writer{version}",
    )


def _every_operation(
    repository: ConfigRepository, audit_log: AuditLog
) -> tuple[Awaitable[object], ...]:
    """One call of each operation of the repository and the audit log (not yet awaited)."""
    return (
        repository.ping(),
        repository.get("store_alpha", None),
        repository.list(),
        repository.save(document(), 0),
        audit_log.list(AuditQuery("store_alpha")),
        audit_log.append(
            AuditRecord("store_alpha", None, AuditAction.CREATE, None, {}, "x", T0, "", 1)
        ),
    )


# --- MongoDB (SecantusDB) -------------------------------------------------------------------


@pytest.fixture
async def mongo_database(
    mongo_client: AsyncMongoClient[dict[str, Any]], mongo_database_name: str
) -> AsyncIterator[str]:
    """The test's database name, its indexes created; the database is dropped after."""
    await ensure_mongo_indexes(mongo_client, mongo_database_name)
    yield mongo_database_name
    await mongo_client.drop_database(mongo_database_name)


@pytest.fixture
def mongo_repository(
    mongo_client: AsyncMongoClient[dict[str, Any]], mongo_database: str
) -> MongoConfigRepository:
    return MongoConfigRepository(mongo_client, mongo_database)


@pytest.fixture
def mongo_audit_log(
    mongo_client: AsyncMongoClient[dict[str, Any]], mongo_database: str
) -> MongoAuditLog:
    return MongoAuditLog(mongo_client, mongo_database)


class TestMongoConfigRepository(ConfigRepositoryContract):
    @pytest.fixture
    async def repository(self, mongo_repository: MongoConfigRepository) -> ConfigRepository:
        return mongo_repository


class TestMongoAuditLog(AuditLogContract):
    @pytest.fixture
    async def audit_log(self, mongo_audit_log: MongoAuditLog) -> AuditLog:
        return mongo_audit_log


class TestMongoPauseStore(PauseStoreContract):
    @pytest.fixture
    def stores(
        self, mongo_client: AsyncMongoClient[dict[str, Any]], mongo_database: str
    ) -> PauseStores:
        return PauseStores(
            MongoPauseStore(mongo_client, mongo_database),
            MongoConfigUnitOfWork(mongo_client, mongo_database),
            MongoAuditLog(mongo_client, mongo_database),
        )


class TestMongoSpecifics:
    async def test_name_and_source(self, mongo_repository: MongoConfigRepository) -> None:
        assert mongo_repository.name == "mongodb"
        await mongo_repository.save(document(), 0)
        got = await mongo_repository.get("store_alpha", None)
        assert got is not None
        assert got.source == "mongodb"

    async def test_documents_have_the_reference_shape(
        self,
        mongo_repository: MongoConfigRepository,
        mongo_client: AsyncMongoClient[dict[str, Any]],
        mongo_database_name: str,
    ) -> None:
        await mongo_repository.save(document(version=1), 0)
        await mongo_repository.save(document(version=2, parameters={"enabled": True}), 1)
        await mongo_repository.save(document("BTCUSDT", version=3), 0)
        db = mongo_client[mongo_database_name]

        raw = await db[GLOBAL_COLLECTION].find_one({"strategy_id": "store_alpha"}, {"_id": 0})
        assert raw == {
            "strategy_id": "store_alpha",
            "parameters": {"enabled": True},
            "version": 2,
            # created_* stay those of the first write; updated_* follow the last one.
            "created_at": T0 + timedelta(seconds=1),
            "updated_at": T0 + timedelta(seconds=2),
            "created_by": "writer1",
            "updated_by": "writer2",
            "metadata": {},
        }
        raw_symbol = await db[SYMBOL_COLLECTION].find_one({"symbol": "BTCUSDT"}, {"_id": 0})
        assert raw_symbol is not None
        assert raw_symbol["strategy_id"] == "store_alpha"
        assert isinstance(raw_symbol["updated_at"], datetime)  # a BSON date, not a string

    async def test_indexes_exist_and_are_idempotent(
        self, mongo_client: AsyncMongoClient[dict[str, Any]], mongo_database_name: str
    ) -> None:
        await ensure_mongo_indexes(mongo_client, mongo_database_name)
        await ensure_mongo_indexes(mongo_client, mongo_database_name)  # again: no error
        db = mongo_client[mongo_database_name]
        global_indexes = await db[GLOBAL_COLLECTION].index_information()
        symbol_indexes = await db[SYMBOL_COLLECTION].index_information()
        audit_indexes = await db[AUDIT_COLLECTION].index_information()
        assert global_indexes["uq_strategy_id"]["unique"] is True
        assert global_indexes["uq_strategy_id"]["key"] == [("strategy_id", 1)]
        assert symbol_indexes["uq_strategy_id_symbol"]["unique"] is True
        assert symbol_indexes["uq_strategy_id_symbol"]["key"] == [
            ("strategy_id", 1),
            ("symbol", 1),
        ]
        assert audit_indexes["ix_strategy_symbol_changed_at"]["key"] == [
            ("strategy_id", 1),
            ("symbol", 1),
            ("changed_at", -1),
        ]
        assert audit_indexes["ix_strategy_version"]["key"] == [("strategy_id", 1), ("version", 1)]
        await mongo_client.drop_database(mongo_database_name)

    async def test_int64_written_by_other_tools_reads_as_int(
        self,
        mongo_repository: MongoConfigRepository,
        mongo_client: AsyncMongoClient[dict[str, Any]],
        mongo_database_name: str,
    ) -> None:
        await mongo_client[mongo_database_name][GLOBAL_COLLECTION].insert_one(
            {
                "strategy_id": "store_alpha",
                "parameters": {"big": Int64(5), "flag": False, "ratio": 2.0},
                "version": Int64(7),
                "created_at": T0,
                "updated_at": T0,
                "created_by": "mongosh",
                "metadata": {},
            }
        )
        got = await mongo_repository.get("store_alpha", None)
        assert got is not None
        assert {k: type(v) for k, v in got.parameters.items()} == {
            "big": int,
            "flag": bool,
            "ratio": float,
        }
        assert got.version == 7
        assert type(got.version) is int
        assert got.updated_by == "mongosh"  # documents without updated_by fall back

    async def test_audit_documents_have_the_reference_shape(
        self,
        mongo_audit_log: MongoAuditLog,
        mongo_client: AsyncMongoClient[dict[str, Any]],
        mongo_database_name: str,
    ) -> None:
        record = AuditRecord(
            strategy_id="store_alpha",
            symbol="BTCUSDT",
            action=AuditAction.UPDATE,
            old_parameters={"oversold_threshold": 30},
            new_parameters={"oversold_threshold": 20},
            changed_by="llm_agent_v1",
            changed_at=T0,
            reason="Market adjustment",
            version=4,
        )
        await mongo_audit_log.append(record)
        raw = await mongo_client[mongo_database_name][AUDIT_COLLECTION].find_one({}, {"_id": 0})
        assert raw == {
            "strategy_id": "store_alpha",
            "symbol": "BTCUSDT",
            "action": "UPDATE",
            "old_parameters": {"oversold_threshold": 30},
            "new_parameters": {"oversold_threshold": 20},
            "changed_by": "llm_agent_v1",
            "changed_at": T0,
            "reason": "Market adjustment",
            "version": 4,
        }

    async def test_unreachable_server_is_unavailable_at_the_selection_timeout(self) -> None:
        """Every operation gives up at the client's own server-selection timeout, not the
        driver's default 30 s: the driver names the timeout it applied in its error."""
        client = create_mongo_client(
            f"mongodb://127.0.0.1:{free_port()}", server_selection_timeout_s=0.5
        )
        repository = MongoConfigRepository(client, "test_rs_nowhere")
        audit_log = MongoAuditLog(client, "test_rs_nowhere")
        at_the_selection_timeout = r"^mongodb: ServerSelectionTimeoutError: .*Timeout: 0\.5s,"
        try:
            for call in (*_every_operation(repository, audit_log), repository.ensure_indexes()):
                with pytest.raises(StoreUnavailableError, match=at_the_selection_timeout):
                    await call
        finally:
            await client.close()

    async def test_from_uri_owns_and_closes_its_client(
        self, secantus_uri: str, mongo_database_name: str
    ) -> None:
        repository = MongoConfigRepository.from_uri(secantus_uri, mongo_database_name)
        await repository.ping()
        await repository.save(document(), 0)
        assert (await repository.list())[0].version == 1
        await repository.close()
        with pytest.raises(StoreUnavailableError):
            await repository.get("store_alpha", None)
        cleanup = create_mongo_client(secantus_uri)
        await cleanup.drop_database(mongo_database_name)
        await cleanup.close()


# --- MySQL (MariaDB) and SQLite ------------------------------------------------------------


@pytest.fixture(params=["mysql", "sqlite"])
def sql_engine(request: pytest.FixtureRequest) -> AsyncEngine:
    """The ``mysql_engine`` or the ``sqlite_engine``: a test using it runs on both."""
    engine: AsyncEngine = request.getfixturevalue(f"{request.param}_engine")
    return engine


class TestSqlConfigRepository(ConfigRepositoryContract):
    @pytest.fixture
    async def repository(self, sql_engine: AsyncEngine) -> ConfigRepository:
        return SqlConfigRepository(sql_engine)


class TestSqlAuditLog(AuditLogContract):
    @pytest.fixture
    async def audit_log(self, sql_engine: AsyncEngine) -> AuditLog:
        return SqlAuditLog(sql_engine)


class TestSqlPauseStore(PauseStoreContract):
    @pytest.fixture
    async def stores(self, sql_engine: AsyncEngine) -> PauseStores:
        return PauseStores(
            SqlPauseStore(sql_engine),
            SqlConfigUnitOfWork(sql_engine),
            SqlAuditLog(sql_engine),
        )


# --- MongoDB primary, MySQL fallback (both up) -----------------------------------------------


class TestFailoverConfigRepository(ConfigRepositoryContract):
    """With both stores up, the composite is a correct repository answered by MongoDB."""

    @pytest.fixture
    def repository(
        self, mongo_repository: MongoConfigRepository, mysql_engine: AsyncEngine
    ) -> ConfigRepository:
        return FailoverConfigRepository(mongo_repository, MySqlConfigRepository(mysql_engine))

    def expected_source(self, repository: ConfigRepository) -> str | None:
        return "mongodb"


class TestFailoverAuditLog(AuditLogContract):
    @pytest.fixture
    def audit_log(self, mongo_audit_log: MongoAuditLog, mysql_engine: AsyncEngine) -> AuditLog:
        return FailoverAuditLog(mongo_audit_log, MySqlAuditLog(mysql_engine))


def _schema(sync_conn: Connection) -> dict[str, Any]:
    """Columns (name, coarse type, nullability), unique keys and indexes of the tables."""
    inspector = inspect(sync_conn)
    schema: dict[str, Any] = {}
    for table in TABLES:
        columns = {
            column["name"]: (_coarse_type(column["type"]), column["nullable"])
            for column in inspector.get_columns(table.name)
        }
        uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(table.name)}
        indexes = set()
        for index in inspector.get_indexes(table.name):
            names = tuple(str(n) for n in index["column_names"])
            if index.get("unique"):
                uniques.add(names)
            else:
                indexes.add(names)
        primary = tuple(inspector.get_pk_constraint(table.name)["constrained_columns"])
        schema[table.name] = {
            "columns": columns,
            "primary": primary,
            "uniques": uniques,
            "indexes": indexes,
        }
    return schema


def _coarse_type(sql_type: Any) -> str:
    name = type(sql_type).__name__.upper()
    if "INT" in name:
        return "integer"
    if "DATETIME" in name or "TIMESTAMP" in name:
        return "datetime"
    if "TEXT" in name or "CLOB" in name:
        return "text"
    if "CHAR" in name or "STRING" in name:
        return f"varchar({sql_type.length})"
    return name


def _metadata_schema() -> dict[str, Any]:
    schema: dict[str, Any] = {}
    for table in TABLES:
        uniques = set()
        indexes = set()
        for constraint in table.constraints:
            columns = tuple(c.name for c in getattr(constraint, "columns", ()))
            if type(constraint).__name__ == "UniqueConstraint":
                uniques.add(columns)
        for index in table.indexes:
            indexes.add(tuple(c.name for c in index.columns))
        schema[table.name] = {
            "columns": {c.name: (_coarse_type(c.type), c.nullable) for c in table.columns},
            "primary": tuple(c.name for c in table.primary_key.columns),
            "uniques": uniques,
            "indexes": indexes,
        }
    return schema


class TestSqlSchema:
    async def test_migrations_build_the_schema_the_code_queries(
        self, mysql_engine: AsyncEngine, sqlite_engine: AsyncEngine
    ) -> None:
        """One truth: 0001_initial.sql (MariaDB), 0001_initial.sqlite.sql (SQLite) and the
        SQLAlchemy tables describe the same columns, types, nullability and keys."""
        async with mysql_engine.connect() as conn:
            mysql_schema = await conn.run_sync(_schema)
        async with sqlite_engine.connect() as conn:
            sqlite_schema = await conn.run_sync(_schema)
        expected = _metadata_schema()
        assert mysql_schema == expected
        assert sqlite_schema == expected

    async def test_mysql_tables_are_innodb_utf8mb4_with_millisecond_datetimes(
        self, mysql_engine: AsyncEngine
    ) -> None:
        async with mysql_engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT table_name, engine, table_collation FROM information_schema.tables"
                        " WHERE table_schema = DATABASE()"
                    )
                )
            ).all()
            tables = {str(name): (engine, collation) for name, engine, collation in rows}
            precisions = (
                await conn.execute(
                    text(
                        "SELECT column_name, datetime_precision FROM information_schema.columns"
                        " WHERE table_schema = DATABASE() AND data_type = 'datetime'"
                        " AND table_name LIKE 'strategy_%'"
                    )
                )
            ).all()
        for table in TABLES:
            engine, collation = tables[table.name]
            assert engine == "InnoDB"
            assert str(collation).startswith("utf8mb4")
        assert precisions
        assert {int(p) for _, p in precisions} == {3}

    async def test_migrate_is_idempotent_and_recorded(self, sql_engine: AsyncEngine) -> None:
        assert await migrate(sql_engine) == []  # the fixture already migrated
        async with sql_engine.connect() as conn:
            rows = (await conn.execute(SCHEMA_MIGRATIONS.select())).all()
        versions = [m.version for m in shipped_migrations(sql_engine.dialect.name)]
        assert [row.version for row in rows] == versions
        assert versions[0] == "0001_initial"

    async def test_fresh_sqlite_file_is_migrated_once(self, tmp_path: Path) -> None:
        engine = create_sql_engine(str(tmp_path / "fresh.db"))  # a bare path is SQLite
        try:
            assert await migrate(engine) == [
                "0001_initial",
                "0002_strategy_sequences",
                "0003_signal_pauses",
                "0004_signal_outcomes",
            ]
            assert await migrate(engine) == []
            repository = SqlConfigRepository(engine)
            assert repository.name == "sqlite"
            await repository.save(document(), 0)
            assert await repository.get("store_alpha", None) is not None
        finally:
            await engine.dispose()

    async def test_concurrent_migrations_on_mysql(self, mysql_url: str) -> None:
        engines = [create_sql_engine(mysql_url) for _ in range(3)]
        try:
            results = await asyncio.gather(*(migrate(engine) for engine in engines))
            assert results == [[], [], []]
        finally:
            for engine in engines:
                await engine.dispose()

    async def test_names(self, mysql_engine: AsyncEngine, sqlite_engine: AsyncEngine) -> None:
        assert MySqlConfigRepository(mysql_engine).name == "mysql"
        assert MySqlAuditLog(mysql_engine).name == "mysql"
        assert SqlConfigRepository(sqlite_engine).name == "sqlite"
        assert SqlAuditLog(sqlite_engine).name == "sqlite"

    async def test_parameters_are_json_text_and_created_fields_are_kept(
        self, sql_engine: AsyncEngine
    ) -> None:
        repository = SqlConfigRepository(sql_engine)
        await repository.save(document(version=1), 0)
        await repository.save(document(version=2, parameters={"a": True, "b": 1, "c": 1.0}), 1)
        async with sql_engine.connect() as conn:
            row = (await conn.execute(text("SELECT * FROM strategy_configs_global"))).one()._mapping
        assert row["parameters"] == '{"a":true,"b":1,"c":1.0}'
        assert row["created_by"] == "writer1"
        assert row["updated_by"] == "writer2"
        assert row["metadata"] == "{}"
        assert row["version"] == 2

    async def test_missing_schema_is_unavailable(self, tmp_path: Path) -> None:
        engine = create_sql_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
        try:
            with pytest.raises(StoreUnavailableError, match="sqlite"):
                await SqlConfigRepository(engine).get("store_alpha", None)
            with pytest.raises(StoreUnavailableError):
                await SqlAuditLog(engine).list(AuditQuery("store_alpha"))
        finally:
            await engine.dispose()

    async def test_unreachable_mysql_is_unavailable_at_once(self) -> None:
        """Every operation fails on its own refused connection (MySQL error 2003), neither
        waiting for a pooled connection nor retrying until a timeout."""
        url = f"mysql+aiomysql://root@127.0.0.1:{free_port()}/test"
        repository = MySqlConfigRepository.from_uri(url, connect_timeout_s=1.0)
        audit_log = MySqlAuditLog.from_uri(url, connect_timeout_s=1.0)
        try:
            for call in _every_operation(repository, audit_log):
                with pytest.raises(
                    StoreUnavailableError, match=r"^mysql: OperationalError: .*\(2003, "
                ):
                    await call
        finally:
            await repository.close()
            await audit_log.close()

    async def test_operation_timeout_is_unavailable(self, mysql_engine: AsyncEngine) -> None:
        """A statement stuck behind another session's row lock gives up at the operation
        timeout: the adapter's TimeoutError, not the server's own lock-wait error (1205),
        which would come only after ``innodb_lock_wait_timeout``."""
        repository = MySqlConfigRepository(mysql_engine, operation_timeout_s=0.3)
        await repository.save(document(version=1), 0)
        async with mysql_engine.connect() as conn:
            lock_wait_s = (await conn.execute(text("SELECT @@innodb_lock_wait_timeout"))).scalar()
        assert lock_wait_s is not None
        assert lock_wait_s >= 10, "the server's lock wait must be far longer than 0.3 s"
        lock_holder = await mysql_engine.connect()
        try:
            await lock_holder.begin()
            await lock_holder.execute(text("SELECT * FROM strategy_configs_global FOR UPDATE"))
            with pytest.raises(StoreUnavailableError, match=r"^mysql: TimeoutError"):
                await repository.save(document(version=2), 1)
        finally:
            await lock_holder.rollback()
            await lock_holder.close()
        await repository.save(document(version=2), 1)  # the pool recovered
        got = await repository.get("store_alpha", None)
        assert got is not None
        assert got.version == 2
