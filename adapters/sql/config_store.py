"""Configuration layers and audit trail in SQL (SQLAlchemy 2 asyncio).

The same code serves MySQL / MariaDB (``mysql+aiomysql://``, the production fallback) and
SQLite (``sqlite+aiosqlite:///path``, the embedded default). Tables and their columns are in
:mod:`adapters.sql.migrations`; run :func:`adapters.sql.migrations.migrate` first.

- Parameters are JSON text; JSON keeps ``true`` / ``1`` / ``1.0`` apart, so bool, int and
  float come back as they went in.
- Datetimes are stored as naive UTC with millisecond precision (``DATETIME(3)``) and come
  back as aware UTC datetimes.
- ``save`` is a compare-and-set: ``UPDATE ... WHERE version = :expected`` must match one row
  (SQLAlchemy's MySQL dialects count matched, not changed, rows), and ``expected_version ==
  0`` is an ``INSERT`` that the unique key rejects when the layer exists. A pause written
  through the unit of work is a compare-and-set on its key's version the same way.
- Every write of a strategy (a layer, an audit record, or both through
  :class:`SqlConfigUnitOfWork`) runs in one transaction that first locks the strategy's row
  in ``strategy_config_sequences`` (``UPDATE ... SET version = version``: a row lock on
  InnoDB, the database write lock on SQLite), so writes to any layer of one strategy are
  serialised across processes and the layers read inside the transaction are the ones the
  write is validated against. An audit record is stored at most once per (strategy,
  version). A MySQL deadlock is a :class:`~application.ports.VersionConflictError` (retry).
- Connection failures, timeouts and a missing schema raise
  :class:`~application.ports.StoreUnavailableError`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final, Self
from urllib.parse import parse_qsl, unquote

from sqlalchemy import ColumnElement, Row, Table, and_, func, insert, or_, select, text, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from adapters.redaction import redact
from adapters.sql.migrations import (
    AUDIT_TABLE,
    GLOBAL_TABLE,
    PAUSE_TABLE,
    SEQUENCE_TABLE,
    SYMBOL_TABLE,
    is_mysql,
)
from application.ports import StoreUnavailableError, VersionConflictError
from domain.config import AuditAction, AuditQuery, AuditRecord, ConfigDocument
from domain.governance import Pause, PauseRecord
from domain.params import ParamValue

MYSQL_DRIVER: Final = "mysql+aiomysql"
SQLITE_DRIVER: Final = "sqlite+aiosqlite"
_MYSQL_DUPLICATE_KEY: Final = 1062
_MYSQL_DEADLOCK: Final = 1213


# --------------------------------------------------------------------------------------
# URIs


def mysql_url(uri: str) -> URL:
    """Parse a MySQL URI (``mysql://user:pass@host:3306/db``, ``mysql+aiomysql://...``,
    ``mariadb://...``) into a SQLAlchemy URL on the async ``aiomysql`` driver.

    The password may be percent-encoded or written as is (the last ``@`` ends it).
    """
    scheme, sep, rest = uri.strip().partition("://")
    if not sep:
        raise ValueError("not a MySQL URI (expected mysql://user:pass@host:3306/db)")
    base = scheme.lower().partition("+")[0]
    if base not in ("mysql", "mariadb"):
        raise ValueError(f"not a MySQL URI: scheme {scheme!r} (expected mysql://)")
    userinfo, at, location = rest.rpartition("@")
    if not at:
        userinfo, location = "", rest
    location, _, query_string = location.partition("?")
    hostport, _, database = location.partition("/")
    host, port = _split_host_port(hostport)
    username, colon, password = userinfo.partition(":")
    return URL.create(
        MYSQL_DRIVER,
        username=unquote(username) or None,
        password=unquote(password) if colon else None,
        host=host or "localhost",
        port=port,
        database=unquote(database.strip("/")) or None,
        query=dict(parse_qsl(query_string, keep_blank_values=True)),
    )


def _split_host_port(hostport: str) -> tuple[str, int | None]:
    if hostport.startswith("["):  # [IPv6]:port
        host, _, after = hostport[1:].partition("]")
        port_text = after.removeprefix(":")
    else:
        host, _, port_text = hostport.partition(":")
    if not port_text:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"invalid MySQL port {port_text!r}")
    return host, int(port_text)


def parse_mysql_uri(uri: str) -> str:
    """The SQLAlchemy URL (``mysql+aiomysql://...``) of a MySQL URI, password included.

    The result is a secret: log it through :func:`adapters.redaction.redact`.
    """
    return mysql_url(uri).render_as_string(hide_password=False)


def sql_url(uri: str) -> URL:
    """A SQLAlchemy async URL for a MySQL URI or a SQLite URL/path."""
    stripped = uri.strip()
    lowered = stripped.lower()
    if lowered.startswith(("mysql", "mariadb")):
        return mysql_url(stripped)
    if lowered.startswith("sqlite"):
        url = make_url(stripped)
        return url.set(drivername=SQLITE_DRIVER)
    if "://" not in stripped:  # a bare file path
        return URL.create(SQLITE_DRIVER, database=stripped)
    raise ValueError(f"unsupported SQL store URI {redact(stripped)!r}")


def create_sql_engine(
    uri: str | URL,
    *,
    connect_timeout_s: float = 2.0,
    pool_size: int = 5,
    echo: bool = False,
) -> AsyncEngine:
    """An engine that fails fast: short connect timeout, pre-ping, recycled connections."""
    url = uri if isinstance(uri, URL) else sql_url(uri)
    if url.get_backend_name() == "sqlite":
        return create_async_engine(
            url, connect_args={"timeout": max(connect_timeout_s, 5.0)}, echo=echo
        )
    return create_async_engine(
        url,
        connect_args={"connect_timeout": connect_timeout_s},
        pool_pre_ping=True,
        pool_recycle=1800,
        pool_size=pool_size,
        pool_timeout=connect_timeout_s,
        echo=echo,
    )


# --------------------------------------------------------------------------------------
# Values


def dump_parameters(parameters: Mapping[str, ParamValue]) -> str:
    """JSON text of a parameter map; ``true``, ``1`` and ``1.0`` stay distinct."""
    for name, value in parameters.items():
        _check_value(name, value)
    return json.dumps(dict(parameters), sort_keys=True, separators=(",", ":"))


def load_parameters(raw: str | None) -> dict[str, ParamValue]:
    if raw is None or raw == "":
        return {}
    loaded = json.loads(raw)
    if not isinstance(loaded, dict):
        raise TypeError(f"stored parameters are not a JSON object: {raw[:80]!r}")
    return {str(name): _check_value(str(name), value) for name, value in loaded.items()}


def _check_value(name: str, value: Any) -> ParamValue:
    if isinstance(value, bool | int | float):
        return value
    raise TypeError(f"parameter {name!r} has unsupported type {type(value).__name__}")


def to_db_datetime(value: dt.datetime) -> dt.datetime:
    """Naive UTC, truncated to milliseconds (naive input is taken as UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def from_db_datetime(value: Any) -> dt.datetime:
    if isinstance(value, str):  # SQLite without type processing
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


# --------------------------------------------------------------------------------------
# Errors


def _error_code(exc: DBAPIError) -> object:
    args = getattr(exc.orig, "args", ())
    return args[0] if args else None


def _is_duplicate_key(exc: IntegrityError) -> bool:
    orig = exc.orig
    if _error_code(exc) == _MYSQL_DUPLICATE_KEY:
        return True
    message = str(orig)
    return "UNIQUE constraint failed" in message or "Duplicate entry" in message


_UNAVAILABLE_ERRORS: Final = (
    OperationalError,
    InterfaceError,
    ProgrammingError,  # e.g. the schema is missing (migrations not run)
    DisconnectionError,
    PoolTimeoutError,
    ConnectionError,
    TimeoutError,
    OSError,
)


class _SqlStore:
    """Engine handling, naming and error translation shared by both adapters."""

    def __init__(
        self, engine: AsyncEngine, *, owns_engine: bool = False, operation_timeout_s: float = 5.0
    ) -> None:
        self._engine = engine
        self._owns_engine = owns_engine
        self._timeout = operation_timeout_s
        self.name: str = "mysql" if is_mysql(engine.dialect.name) else engine.dialect.name

    @classmethod
    def from_uri(
        cls, uri: str, *, connect_timeout_s: float = 2.0, operation_timeout_s: float = 5.0
    ) -> Self:
        """A store on its own engine (disposed by :meth:`close`)."""
        engine = create_sql_engine(uri, connect_timeout_s=connect_timeout_s)
        return cls(engine, owns_engine=True, operation_timeout_s=operation_timeout_s)

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @asynccontextmanager
    async def _guarded(self) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self._timeout):
                yield
        except OperationalError as exc:
            if _error_code(exc) == _MYSQL_DEADLOCK:
                raise VersionConflictError(f"{self.name}: deadlock, retry the write") from exc
            raise self._unavailable(exc) from exc
        except _UNAVAILABLE_ERRORS as exc:
            raise self._unavailable(exc) from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise self._unavailable(exc) from exc
            raise

    def _unavailable(self, exc: BaseException) -> StoreUnavailableError:
        detail = redact(str(exc).splitlines()[0]) if str(exc) else ""
        return StoreUnavailableError(f"{self.name}: {type(exc).__name__}: {detail}".rstrip(": "))

    async def ping(self) -> None:
        async with self._guarded(), self._engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        if self._owns_engine:
            await self._engine.dispose()


def _document_from_row(row: Row[Any], symbol: str | None, source: str) -> ConfigDocument:
    return ConfigDocument(
        strategy_id=row.strategy_id,
        symbol=symbol,
        parameters=load_parameters(row.parameters),
        version=int(row.version),
        updated_at=from_db_datetime(row.updated_at),
        updated_by=row.updated_by,
        source=source,
    )


class SqlConfigRepository(_SqlStore):
    """:class:`~application.ports.ConfigRepository` on SQL (``name``: ``mysql``/``sqlite``)."""

    async def get(self, strategy_id: str, symbol: str | None) -> ConfigDocument | None:
        table, key = _layer_key(strategy_id, symbol)
        async with self._guarded(), self._engine.connect() as conn:
            row = (await conn.execute(select(table).where(key))).first()
        return None if row is None else _document_from_row(row, symbol, self.name)

    async def list(self, strategy_id: str | None = None) -> list[ConfigDocument]:
        async with self._guarded(), self._engine.connect() as conn:
            return await _list_layers(conn, strategy_id, self.name)

    async def save(self, document: ConfigDocument, expected_version: int) -> None:
        async with self._guarded(), self._engine.begin() as conn:
            await _lock_strategy(conn, document.strategy_id)
            await _save_layer(conn, document, expected_version)
            await _advance_sequence(conn, document.strategy_id, document.version)


def _layer_key(strategy_id: str, symbol: str | None) -> tuple[Table, ColumnElement[bool]]:
    if symbol is None:
        return GLOBAL_TABLE, GLOBAL_TABLE.c.strategy_id == strategy_id
    return SYMBOL_TABLE, and_(
        SYMBOL_TABLE.c.strategy_id == strategy_id, SYMBOL_TABLE.c.symbol == symbol
    )


async def _lock_strategy(conn: AsyncConnection, strategy_id: str) -> None:
    """Take the strategy's write lock for the rest of the transaction (see module doc).

    The first write of a strategy creates its row (``INSERT IGNORE``; racing creators both
    end up locking the one row).
    """
    table = SEQUENCE_TABLE
    lock = update(table).where(table.c.strategy_id == strategy_id).values(version=table.c.version)
    if (await conn.execute(lock)).rowcount == 1:
        return
    create = (
        insert(table)
        .values(strategy_id=strategy_id, version=0)
        .prefix_with("IGNORE", dialect="mysql")
        .prefix_with("IGNORE", dialect="mariadb")
        .prefix_with("OR IGNORE", dialect="sqlite")
    )
    await conn.execute(create)
    await conn.execute(lock)


async def _advance_sequence(conn: AsyncConnection, strategy_id: str, version: int) -> None:
    table = SEQUENCE_TABLE
    await conn.execute(
        update(table)
        .where(table.c.strategy_id == strategy_id, table.c.version < version)
        .values(version=version)
    )


async def _list_layers(
    conn: AsyncConnection, strategy_id: str | None, source: str
) -> list[ConfigDocument]:
    global_query = select(GLOBAL_TABLE)
    symbol_query = select(SYMBOL_TABLE)
    if strategy_id is not None:
        global_query = global_query.where(GLOBAL_TABLE.c.strategy_id == strategy_id)
        symbol_query = symbol_query.where(SYMBOL_TABLE.c.strategy_id == strategy_id)
    globals_ = (await conn.execute(global_query)).all()
    symbols = (await conn.execute(symbol_query)).all()
    documents = [_document_from_row(row, None, source) for row in globals_]
    documents += [_document_from_row(row, row.symbol, source) for row in symbols]
    documents.sort(key=lambda d: (d.strategy_id, d.symbol is not None, d.symbol or ""))
    return documents


async def _save_layer(
    conn: AsyncConnection, document: ConfigDocument, expected_version: int
) -> None:
    """Compare-and-set one layer (see module doc); the caller holds the strategy's lock."""
    table, key = _layer_key(document.strategy_id, document.symbol)
    updated_at = to_db_datetime(document.updated_at)
    fields: dict[str, Any] = {
        "parameters": dump_parameters(document.parameters),
        "version": document.version,
        "updated_at": updated_at,
        "updated_by": document.updated_by,
    }
    layer = "global" if document.symbol is None else document.symbol
    values = {
        **fields,
        "strategy_id": document.strategy_id,
        "created_at": updated_at,
        "created_by": document.updated_by,
        "metadata": "{}",
    }
    if document.symbol is not None:
        values["symbol"] = document.symbol
    await _compare_and_set(
        conn,
        table,
        key,
        expected_version,
        values,
        fields,
        where=f"config {document.strategy_id}/{layer}",
        absent="no document",
    )


async def _compare_and_set(
    conn: AsyncConnection,
    table: Table,
    key: ColumnElement[bool],
    expected_version: int,
    new_row: dict[str, Any],
    changed: dict[str, Any],
    *,
    where: str,
    absent: str,
) -> None:
    """Insert ``new_row`` when ``expected_version`` is 0 (a duplicate key is a conflict),
    else update the row at ``key`` to ``changed`` only if it is still at that version;
    :class:`VersionConflictError` (naming ``where``) when it is not."""
    if expected_version == 0:
        try:
            await conn.execute(insert(table).values(**new_row))
        except IntegrityError as exc:
            if _is_duplicate_key(exc):
                raise VersionConflictError(f"{where} already exists (expected {absent})") from exc
            raise
        return
    result = await conn.execute(
        update(table).where(key, table.c.version == expected_version).values(**changed)
    )
    if result.rowcount != 1:
        raise VersionConflictError(f"{where} is not at version {expected_version}")


async def _insert_audit(conn: AsyncConnection, record: AuditRecord) -> bool:
    """Insert ``record`` unless one of its (strategy, version) exists; the caller holds the
    strategy's lock. Returns whether it was inserted."""
    t = AUDIT_TABLE
    exists = await conn.scalar(
        select(func.count())
        .select_from(t)
        .where(t.c.strategy_id == record.strategy_id, t.c.version == record.version)
    )
    if exists:
        return False
    values = {
        "strategy_id": record.strategy_id,
        "symbol": record.symbol,
        "action": record.action.value,
        "old_parameters": _dump_optional(record.old_parameters),
        "new_parameters": _dump_optional(record.new_parameters),
        "changed_by": record.changed_by,
        "changed_at": to_db_datetime(record.changed_at),
        "reason": record.reason,
        "version": record.version,
    }
    await conn.execute(insert(t).values(**values))
    return True


def _dump_optional(parameters: Mapping[str, ParamValue] | None) -> str | None:
    return None if parameters is None else dump_parameters(parameters)


def _load_optional(raw: str | None) -> dict[str, ParamValue] | None:
    return None if raw is None else load_parameters(raw)


class SqlAuditLog(_SqlStore):
    """:class:`~application.ports.AuditLog` on the ``strategy_config_audit`` table."""

    async def append(self, record: AuditRecord) -> None:
        """Store ``record`` unless the strategy already has one with its version."""
        async with self._guarded(), self._engine.begin() as conn:
            await _lock_strategy(conn, record.strategy_id)
            await _insert_audit(conn, record)

    async def list(self, query: AuditQuery) -> list[AuditRecord]:
        if query.limit == 0:
            return []
        t = AUDIT_TABLE
        statement = select(t)
        if query.strategy_id is not None:
            statement = statement.where(t.c.strategy_id == query.strategy_id)
        if query.symbol is not None:
            statement = statement.where(t.c.symbol == query.symbol)
        if query.since is not None:
            statement = statement.where(t.c.changed_at >= to_db_datetime(query.since))
        if query.until is not None:
            statement = statement.where(t.c.changed_at < to_db_datetime(query.until))
        if (after := query.after) is not None:
            at = to_db_datetime(after.changed_at)
            statement = statement.where(
                or_(
                    t.c.changed_at < at,
                    and_(t.c.changed_at == at, t.c.strategy_id < after.strategy_id),
                    and_(
                        t.c.changed_at == at,
                        t.c.strategy_id == after.strategy_id,
                        t.c.version < after.version,
                    ),
                )
            )
        statement = statement.order_by(
            t.c.changed_at.desc(), t.c.strategy_id.desc(), t.c.version.desc()
        )
        async with self._guarded(), self._engine.connect() as conn:
            rows = (await conn.execute(statement.limit(query.limit))).all()
        return [
            AuditRecord(
                strategy_id=row.strategy_id,
                symbol=row.symbol,
                action=AuditAction(row.action),
                old_parameters=_load_optional(row.old_parameters),
                new_parameters=_load_optional(row.new_parameters),
                changed_by=row.changed_by,
                changed_at=from_db_datetime(row.changed_at),
                reason=row.reason,
                version=int(row.version),
            )
            for row in rows
        ]


def _pause_fields(record: PauseRecord) -> dict[str, Any]:
    """The columns a newer record of a pause key replaces."""
    return {
        "active": 1 if record.active else 0,
        "version": record.version,
        "updated_at": to_db_datetime(record.updated_at),
        "updated_by": record.updated_by,
        "reason": record.reason,
    }


def _pause_row(record: PauseRecord) -> dict[str, Any]:
    """Every column of a pause key's row."""
    return {
        **_pause_fields(record),
        "pause_key": record.key,
        "strategy_id": record.pause.strategy_id,
        "symbol": record.pause.symbol,
    }


async def _apply_pause(conn: AsyncConnection, record: PauseRecord) -> bool:
    """Upsert ``record`` unless its key is held at that version or newer; True if stored."""
    t = PAUSE_TABLE
    updated = await conn.execute(
        update(t)
        .where(t.c.pause_key == record.key, t.c.version < record.version)
        .values(**_pause_fields(record))
    )
    if updated.rowcount == 1:
        return True
    exists = await conn.scalar(
        select(func.count()).select_from(t).where(t.c.pause_key == record.key)
    )
    if exists:
        return False
    try:  # the caller holds the sequence lock: a duplicate means a writer without it
        await conn.execute(insert(t).values(**_pause_row(record)))
    except IntegrityError as exc:
        if _is_duplicate_key(exc):
            return False
        raise
    return True


async def _save_pause(conn: AsyncConnection, record: PauseRecord, expected_version: int) -> None:
    """Compare-and-set ``record`` on its key's stored version (0 = no record), like
    :func:`_save_layer`; the caller holds the sequence lock."""
    if record.version <= expected_version:
        raise VersionConflictError(
            f"pause {record.key}: version {record.version} is not newer than {expected_version}"
        )
    t = PAUSE_TABLE
    await _compare_and_set(
        conn,
        t,
        t.c.pause_key == record.key,
        expected_version,
        _pause_row(record),
        _pause_fields(record),
        where=f"pause {record.key}",
        absent="no record",
    )


def _pause_from_row(row: Row[Any], source: str) -> PauseRecord:
    return PauseRecord(
        pause=Pause(row.strategy_id, row.symbol),
        active=bool(row.active),
        version=int(row.version),
        updated_at=from_db_datetime(row.updated_at),
        updated_by=row.updated_by,
        reason=row.reason,
        source=source,
    )


class SqlPauseStore(_SqlStore):
    """:class:`~application.ports.PauseStore` on the ``signal_pauses`` table."""

    async def list(self) -> list[PauseRecord]:
        async with self._guarded(), self._engine.connect() as conn:
            rows = (await conn.execute(select(PAUSE_TABLE).order_by(PAUSE_TABLE.c.pause_key))).all()
        return [_pause_from_row(row, self.name) for row in rows]

    async def apply(self, record: PauseRecord) -> bool:
        async with self._guarded(), self._engine.begin() as conn:
            await _lock_strategy(conn, record.sequence_key)
            stored = await _apply_pause(conn, record)
            if stored:
                await _advance_sequence(conn, record.sequence_key, record.version)
            return stored


class _SqlTransaction:
    """The body of one :meth:`SqlConfigUnitOfWork.write` (holds the strategy's lock)."""

    def __init__(self, conn: AsyncConnection, strategy_id: str, store_name: str) -> None:
        self._conn = conn
        self._strategy_id = strategy_id
        self.store_name = store_name
        self.highest_version = 0

    async def layers(self) -> list[ConfigDocument]:
        return await _list_layers(self._conn, self._strategy_id, self.store_name)

    async def next_version(self) -> int:
        table = SEQUENCE_TABLE
        held = await self._conn.scalar(
            select(table.c.version).where(table.c.strategy_id == self._strategy_id)
        )
        layers = await self.layers()
        return max([int(held or 0), *(d.version for d in layers)]) + 1

    async def save(self, document: ConfigDocument, expected_version: int) -> None:
        await _save_layer(self._conn, document, expected_version)
        self.highest_version = max(self.highest_version, document.version)

    async def save_pause(self, record: PauseRecord, expected_version: int) -> None:
        await _save_pause(self._conn, record, expected_version)
        self.highest_version = max(self.highest_version, record.version)

    async def append(self, record: AuditRecord) -> None:
        if not await _insert_audit(self._conn, record):
            raise VersionConflictError(
                f"{record.strategy_id}: an audit record of version {record.version} exists"
            )


class SqlConfigUnitOfWork(_SqlStore):
    """:class:`~application.ports.ConfigUnitOfWork` on SQL: one transaction holding the
    strategy's lock; the layer and its audit record commit together or not at all.

    The operation timeout (15 s by default) includes waiting for the strategy's lock behind
    other replicas' writes of the same strategy.
    """

    def __init__(
        self, engine: AsyncEngine, *, owns_engine: bool = False, operation_timeout_s: float = 15.0
    ) -> None:
        super().__init__(engine, owns_engine=owns_engine, operation_timeout_s=operation_timeout_s)

    @asynccontextmanager
    async def write(self, strategy_id: str) -> AsyncIterator[_SqlTransaction]:
        async with self._guarded(), self._engine.begin() as conn:
            await _lock_strategy(conn, strategy_id)
            transaction = _SqlTransaction(conn, strategy_id, self.name)
            yield transaction
            if transaction.highest_version:
                await _advance_sequence(conn, strategy_id, transaction.highest_version)


# The design documents name the production fallback after MySQL.
MySqlConfigRepository = SqlConfigRepository
MySqlAuditLog = SqlAuditLog
