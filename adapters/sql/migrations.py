"""The SQL schema of the configuration store and a tiny migration runner.

Shipped migrations live in ``adapters/sql/migrations/``: ``NNNN_name.sql`` is the MySQL /
MariaDB script, ``NNNN_name.sqlite.sql`` its SQLite twin. :func:`migrate` applies, in order,
those not yet recorded in ``schema_migrations`` and records each one (version, checksum,
time). Scripts must be idempotent (``CREATE TABLE IF NOT EXISTS`` ...): MySQL DDL commits
implicitly, so a migration interrupted half-way is simply applied again.

The SQLAlchemy :data:`TABLES` below are what the repositories query; they describe the same
columns as the scripts (an integration test reflects both databases and compares).
Statements are split on ``;`` at the end of a line; ``--`` comment lines are dropped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import structlog
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    insert,
    select,
    text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = structlog.get_logger(__name__)

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"
SQLITE_SUFFIX: Final = ".sqlite.sql"
MIGRATION_LOCK: Final = "realtime_strategies_schema_migrations"

_MYSQL_TABLE_OPTIONS: Final[dict[str, Any]] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}


def _id() -> Column[Any]:
    # SQLite only auto-numbers an INTEGER PRIMARY KEY (the rowid).
    return Column(
        "id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )


def _datetime() -> DateTime:
    precise = mysql.DATETIME(fsp=3)
    return DateTime().with_variant(precise, "mysql").with_variant(precise, "mariadb")


metadata = MetaData()


def _layer_columns() -> list[Column[Any]]:
    return [
        Column("parameters", Text(), nullable=False),
        Column("version", BigInteger(), nullable=False),
        Column("created_at", _datetime(), nullable=False),
        Column("updated_at", _datetime(), nullable=False),
        Column("created_by", String(255), nullable=False),
        Column("updated_by", String(255), nullable=False),
        Column("metadata", Text(), nullable=False),
    ]


def _layer_table(name: str, unique_name: str, *key: Column[Any]) -> Table:
    """A table of configuration layers: one row per ``key`` (unique together)."""
    return Table(
        name,
        metadata,
        _id(),
        *key,
        *_layer_columns(),
        UniqueConstraint(*(column.name for column in key), name=unique_name),
        **_MYSQL_TABLE_OPTIONS,
    )


GLOBAL_TABLE: Final = _layer_table(
    "strategy_configs_global",
    "uq_strategy_configs_global_strategy_id",
    Column("strategy_id", String(100), nullable=False),
)

SYMBOL_TABLE: Final = _layer_table(
    "strategy_configs_symbol",
    "uq_strategy_configs_symbol_strategy_id_symbol",
    Column("strategy_id", String(100), nullable=False),
    Column("symbol", String(32), nullable=False),
)

AUDIT_TABLE: Final = Table(
    "strategy_config_audit",
    metadata,
    _id(),
    Column("strategy_id", String(100), nullable=False),
    Column("symbol", String(32), nullable=True),
    Column("action", String(16), nullable=False),
    Column("old_parameters", Text(), nullable=True),
    Column("new_parameters", Text(), nullable=True),
    Column("changed_by", String(255), nullable=False),
    Column("changed_at", _datetime(), nullable=False),
    Column("reason", Text(), nullable=False),
    Column("version", BigInteger(), nullable=False),
    Index(
        "ix_strategy_config_audit_strategy_symbol_changed_at",
        "strategy_id",
        "symbol",
        "changed_at",
    ),
    Index("ix_strategy_config_audit_strategy_id_version", "strategy_id", "version"),
    **_MYSQL_TABLE_OPTIONS,
)

SEQUENCE_TABLE: Final = Table(
    "strategy_config_sequences",
    metadata,
    Column("strategy_id", String(100), primary_key=True),
    Column("version", BigInteger(), nullable=False),
    **_MYSQL_TABLE_OPTIONS,
)

PAUSE_TABLE: Final = Table(
    "signal_pauses",
    metadata,
    Column("pause_key", String(140), primary_key=True),
    Column("strategy_id", String(100), nullable=True),
    Column("symbol", String(32), nullable=True),
    Column("active", Integer(), nullable=False),
    Column("version", BigInteger(), nullable=False),
    Column("updated_at", _datetime(), nullable=False),
    Column("updated_by", String(255), nullable=False),
    Column("reason", Text(), nullable=False),
    **_MYSQL_TABLE_OPTIONS,
)

TABLES: Final = (GLOBAL_TABLE, SYMBOL_TABLE, AUDIT_TABLE, SEQUENCE_TABLE, PAUSE_TABLE)

SCHEMA_MIGRATIONS: Final = Table(
    "schema_migrations",
    MetaData(),
    Column("version", String(191), primary_key=True),
    Column("checksum", String(64), nullable=False),
    Column("applied_at", _datetime(), nullable=False),
    **_MYSQL_TABLE_OPTIONS,
)


class MigrationError(RuntimeError):
    """A shipped migration is missing for this dialect or could not be applied."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    def statements(self) -> list[str]:
        return split_statements(self.sql)


def is_mysql(engine_or_dialect_name: str) -> bool:
    return engine_or_dialect_name in ("mysql", "mariadb")


def shipped_migrations(dialect: str, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations for ``dialect`` (``mysql``/``mariadb`` or ``sqlite``), oldest first."""
    versions = sorted(
        p.name.removesuffix(".sql")
        for p in directory.glob("*.sql")
        if not p.name.endswith(SQLITE_SUFFIX)
    )
    migrations = []
    for version in versions:
        if is_mysql(dialect):
            path = directory / f"{version}.sql"
        elif dialect == "sqlite":
            path = directory / f"{version}{SQLITE_SUFFIX}"
        else:
            raise MigrationError(f"no migrations for SQL dialect {dialect!r}")
        if not path.is_file():
            raise MigrationError(f"migration {version} has no {dialect} script ({path.name})")
        migrations.append(Migration(version, path))
    return migrations


def split_statements(sql: str) -> list[str]:
    """Split a script into statements: ``;`` ends a statement at the end of a line."""
    statements: list[str] = []
    current: list[str] = []
    for line in sql.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("--"):
            continue
        current.append(line)
        if stripped.endswith(";"):
            statement = "\n".join(current).strip().removesuffix(";").strip()
            if statement:
                statements.append(statement)
            current = []
    tail = "\n".join(current).strip()
    if tail:
        statements.append(tail)
    return statements


async def applied_migrations(engine: AsyncEngine) -> dict[str, str]:
    """Version → checksum of every recorded migration (empty when none ever ran)."""
    async with engine.connect() as conn:
        await conn.run_sync(lambda c: SCHEMA_MIGRATIONS.create(c, checkfirst=True))
        await conn.commit()
        rows = await conn.execute(select(SCHEMA_MIGRATIONS.c.version, SCHEMA_MIGRATIONS.c.checksum))
        return {str(version): str(checksum) for version, checksum in rows}


async def migrate(engine: AsyncEngine, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply the shipped migrations not yet recorded; return the versions applied now.

    On MySQL a named lock (``GET_LOCK``) keeps replicas starting together from racing.
    """
    dialect = engine.dialect.name
    migrations = shipped_migrations(dialect, directory)
    async with engine.connect() as lock_conn:
        if is_mysql(dialect):
            got = await lock_conn.scalar(
                text("SELECT GET_LOCK(:name, 30)"), {"name": MIGRATION_LOCK}
            )
            if got != 1:
                raise MigrationError("could not take the schema migration lock within 30 s")
        try:
            return await _apply(engine, migrations)
        finally:
            if is_mysql(dialect):
                release = text("SELECT RELEASE_LOCK(:name)")
                await lock_conn.execute(release, {"name": MIGRATION_LOCK})


async def _apply(engine: AsyncEngine, migrations: list[Migration]) -> list[str]:
    applied = await applied_migrations(engine)
    done: list[str] = []
    for migration in migrations:
        if migration.version in applied:
            if applied[migration.version] != migration.checksum:
                log.warning("schema_migration_changed_after_apply", version=migration.version)
            continue
        try:
            async with engine.begin() as conn:
                for statement in migration.statements():
                    await conn.exec_driver_sql(statement)
                await _record(conn, migration)
        except IntegrityError:
            # Another process recorded it meanwhile (SQLite has no named lock): the script
            # is idempotent, so both runs leave the same schema.
            log.info("schema_migration_recorded_concurrently", version=migration.version)
            continue
        log.info("schema_migration_applied", version=migration.version)
        done.append(migration.version)
    return done


async def _record(conn: AsyncConnection, migration: Migration) -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    await conn.execute(
        insert(SCHEMA_MIGRATIONS).values(
            version=migration.version,
            checksum=migration.checksum,
            applied_at=now.replace(microsecond=now.microsecond // 1000 * 1000),
        )
    )
