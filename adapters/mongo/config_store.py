"""Configuration layers and audit trail in MongoDB, with PyMongo's native async API.

Collections (the reference's schema):

- ``strategy_configs_global``: one document per ``strategy_id`` (unique index);
- ``strategy_configs_symbol``: one document per ``(strategy_id, symbol)`` (unique index);
- ``strategy_config_audit``: append-only, indexed by ``(strategy_id, symbol, changed_at desc)``
  and ``(strategy_id, version)``.

A layer document::

    {strategy_id, symbol?, parameters, version, created_at, updated_at,
     created_by, updated_by, metadata}

``save`` is a compare-and-set on ``version``: an update filtered on the expected version, or,
for ``expected_version == 0``, an insert that the unique index turns into a
:class:`~application.ports.VersionConflictError` when the layer already exists.

Datetimes are BSON dates (millisecond precision, UTC); the client is built with
``tz_aware=True`` so they come back as aware UTC datetimes. Every failure to reach or use
the server becomes :class:`~application.ports.StoreUnavailableError`, and the client's short
server-selection timeout (2 s by default) makes a dead server fail fast.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Mapping
from typing import Any, Final, TypeVar

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    ConnectionFailure,
    DuplicateKeyError,
    InvalidOperation,
    OperationFailure,
    PyMongoError,
    WTimeoutError,
)

from adapters.redaction import redact
from application.ports import StoreUnavailableError, VersionConflictError
from domain.config import AuditAction, AuditRecord, ConfigDocument
from domain.params import ParamValue

GLOBAL_COLLECTION: Final = "strategy_configs_global"
SYMBOL_COLLECTION: Final = "strategy_configs_symbol"
AUDIT_COLLECTION: Final = "strategy_config_audit"
DEFAULT_DATABASE: Final = "petrosa"
SOURCE: Final = "mongodb"

MongoDocument = dict[str, Any]
T = TypeVar("T")


def create_mongo_client(
    uri: str,
    *,
    server_selection_timeout_s: float = 2.0,
    connect_timeout_s: float = 2.0,
    socket_timeout_s: float = 5.0,
    app_name: str = "realtime-strategies",
) -> AsyncMongoClient[MongoDocument]:
    """A client tuned to fail fast: a dead server is reported within the selection timeout.

    The client connects lazily (on the first operation), so building it never blocks.
    """
    return AsyncMongoClient(
        uri,
        serverSelectionTimeoutMS=int(server_selection_timeout_s * 1000),
        connectTimeoutMS=int(connect_timeout_s * 1000),
        socketTimeoutMS=int(socket_timeout_s * 1000),
        tz_aware=True,
        tzinfo=dt.UTC,
        appname=app_name,
    )


def _unavailable(exc: PyMongoError) -> StoreUnavailableError:
    return StoreUnavailableError(f"mongodb: {type(exc).__name__}: {redact(str(exc))}")


def _is_store_failure(exc: PyMongoError) -> bool:
    """Connection, timeout and server-side failures (not programming errors like bad keys)."""
    return isinstance(
        exc, ConnectionFailure | OperationFailure | WTimeoutError | InvalidOperation
    ) or bool(getattr(exc, "timeout", False))


async def _guard(operation: Awaitable[T]) -> T:
    """Await a driver call, translating store failures to :class:`StoreUnavailableError`."""
    try:
        return await operation
    except DuplicateKeyError:
        raise
    except PyMongoError as exc:
        if _is_store_failure(exc):
            raise _unavailable(exc) from exc
        raise


def to_bson_datetime(value: dt.datetime) -> dt.datetime:
    """UTC, truncated to the millisecond BSON dates keep (naive datetimes are taken as UTC)."""
    value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _from_bson_datetime(value: Any) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise TypeError(f"expected a BSON date, got {type(value).__name__}")
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _param_value(name: str, value: Any) -> ParamValue:
    # bool before int (bool is an int); bson.Int64 is an int subclass: return a plain int.
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    raise TypeError(f"parameter {name!r} has unsupported stored type {type(value).__name__}")


def _decode_parameters(raw: Any) -> dict[str, ParamValue]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise TypeError(f"parameters must be a document, got {type(raw).__name__}")
    return {str(k): _param_value(str(k), v) for k, v in raw.items()}


def _decode_optional_parameters(raw: Any) -> dict[str, ParamValue] | None:
    return None if raw is None else _decode_parameters(raw)


def _encode_parameters(parameters: Mapping[str, ParamValue]) -> dict[str, ParamValue]:
    return {name: _param_value(name, value) for name, value in parameters.items()}


def _encode_optional(parameters: Mapping[str, ParamValue] | None) -> dict[str, ParamValue] | None:
    return None if parameters is None else _encode_parameters(parameters)


def _document_from_bson(raw: MongoDocument, symbol: str | None) -> ConfigDocument:
    return ConfigDocument(
        strategy_id=str(raw["strategy_id"]),
        symbol=symbol,
        parameters=_decode_parameters(raw.get("parameters")),
        version=int(raw["version"]),
        updated_at=_from_bson_datetime(raw["updated_at"]),
        updated_by=str(raw.get("updated_by", raw.get("created_by", ""))),
        source=SOURCE,
    )


class MongoConfigRepository:
    """:class:`~application.ports.ConfigRepository` on MongoDB (``name = "mongodb"``)."""

    name: str = SOURCE

    def __init__(
        self,
        client: AsyncMongoClient[MongoDocument],
        database: str = DEFAULT_DATABASE,
        *,
        owns_client: bool = False,
    ) -> None:
        self._client = client
        self._owns_client = owns_client
        db: AsyncDatabase[MongoDocument] = client[database]
        self._global: AsyncCollection[MongoDocument] = db[GLOBAL_COLLECTION]
        self._symbol: AsyncCollection[MongoDocument] = db[SYMBOL_COLLECTION]

    @classmethod
    def from_uri(
        cls,
        uri: str,
        database: str = DEFAULT_DATABASE,
        *,
        server_selection_timeout_s: float = 2.0,
        connect_timeout_s: float = 2.0,
        socket_timeout_s: float = 5.0,
    ) -> MongoConfigRepository:
        client = create_mongo_client(
            uri,
            server_selection_timeout_s=server_selection_timeout_s,
            connect_timeout_s=connect_timeout_s,
            socket_timeout_s=socket_timeout_s,
        )
        return cls(client, database, owns_client=True)

    async def ensure_indexes(self) -> None:
        """Create the unique keys of both layer collections (idempotent)."""
        await _guard(
            self._global.create_index(
                [("strategy_id", ASCENDING)], unique=True, name="uq_strategy_id"
            )
        )
        await _guard(
            self._symbol.create_index(
                [("strategy_id", ASCENDING), ("symbol", ASCENDING)],
                unique=True,
                name="uq_strategy_id_symbol",
            )
        )

    def _layer(
        self, strategy_id: str, symbol: str | None
    ) -> tuple[AsyncCollection[MongoDocument], MongoDocument]:
        if symbol is None:
            return self._global, {"strategy_id": strategy_id}
        return self._symbol, {"strategy_id": strategy_id, "symbol": symbol}

    async def get(self, strategy_id: str, symbol: str | None) -> ConfigDocument | None:
        collection, key = self._layer(strategy_id, symbol)
        raw = await _guard(collection.find_one(key, {"_id": 0}))
        return None if raw is None else _document_from_bson(raw, symbol)

    async def list(self, strategy_id: str | None = None) -> list[ConfigDocument]:
        query: MongoDocument = {} if strategy_id is None else {"strategy_id": strategy_id}
        globals_ = await _guard(self._global.find(query, {"_id": 0}).to_list())
        symbols = await _guard(self._symbol.find(query, {"_id": 0}).to_list())
        documents = [_document_from_bson(raw, None) for raw in globals_]
        documents += [_document_from_bson(raw, str(raw["symbol"])) for raw in symbols]
        documents.sort(key=lambda d: (d.strategy_id, d.symbol is not None, d.symbol or ""))
        return documents

    async def save(self, document: ConfigDocument, expected_version: int) -> None:
        collection, key = self._layer(document.strategy_id, document.symbol)
        updated_at = to_bson_datetime(document.updated_at)
        fields: MongoDocument = {
            "parameters": _encode_parameters(document.parameters),
            "version": document.version,
            "updated_at": updated_at,
            "updated_by": document.updated_by,
        }
        if expected_version == 0:
            new = {
                **key,
                **fields,
                "created_at": updated_at,
                "created_by": document.updated_by,
                "metadata": {},
            }
            try:
                await _guard(collection.insert_one(new))
            except DuplicateKeyError as exc:
                raise VersionConflictError(
                    f"{_describe(document)} already exists (expected no document)"
                ) from exc
            return
        result = await _guard(
            collection.update_one({**key, "version": expected_version}, {"$set": fields})
        )
        if result.matched_count != 1:
            raise VersionConflictError(
                f"{_describe(document)} is not at version {expected_version}"
            )

    async def ping(self) -> None:
        await _guard(self._client.admin.command("ping"))

    async def close(self) -> None:
        if self._owns_client:
            await self._client.close()


def _describe(document: ConfigDocument) -> str:
    layer = "global" if document.symbol is None else document.symbol
    return f"config {document.strategy_id}/{layer}"


def _audit_to_bson(record: AuditRecord) -> MongoDocument:
    return {
        "strategy_id": record.strategy_id,
        "symbol": record.symbol,
        "action": record.action.value,
        "old_parameters": _encode_optional(record.old_parameters),
        "new_parameters": _encode_optional(record.new_parameters),
        "changed_by": record.changed_by,
        "changed_at": to_bson_datetime(record.changed_at),
        "reason": record.reason,
        "version": record.version,
    }


def _audit_from_bson(raw: MongoDocument) -> AuditRecord:
    symbol = raw.get("symbol")
    return AuditRecord(
        strategy_id=str(raw["strategy_id"]),
        symbol=None if symbol is None else str(symbol),
        action=AuditAction(raw["action"]),
        old_parameters=_decode_optional_parameters(raw.get("old_parameters")),
        new_parameters=_decode_optional_parameters(raw.get("new_parameters")),
        changed_by=str(raw.get("changed_by", "")),
        changed_at=_from_bson_datetime(raw["changed_at"]),
        reason=str(raw.get("reason") or ""),
        version=int(raw.get("version", 0)),
    )


class MongoAuditLog:
    """:class:`~application.ports.AuditLog` on the ``strategy_config_audit`` collection."""

    name: str = SOURCE

    def __init__(
        self,
        client: AsyncMongoClient[MongoDocument],
        database: str = DEFAULT_DATABASE,
        *,
        owns_client: bool = False,
    ) -> None:
        self._client = client
        self._owns_client = owns_client
        self._audit: AsyncCollection[MongoDocument] = client[database][AUDIT_COLLECTION]

    async def ensure_indexes(self) -> None:
        await _guard(
            self._audit.create_index(
                [("strategy_id", ASCENDING), ("symbol", ASCENDING), ("changed_at", DESCENDING)],
                name="ix_strategy_symbol_changed_at",
            )
        )
        await _guard(
            self._audit.create_index(
                [("strategy_id", ASCENDING), ("version", ASCENDING)],
                name="ix_strategy_version",
            )
        )

    async def append(self, record: AuditRecord) -> None:
        await _guard(self._audit.insert_one(_audit_to_bson(record)))

    async def list(
        self, strategy_id: str, symbol: str | None = None, limit: int = 100
    ) -> list[AuditRecord]:
        if limit <= 0:
            return []
        query: MongoDocument = {"strategy_id": strategy_id}
        if symbol is not None:
            query["symbol"] = symbol
        cursor = (
            self._audit.find(query, {"_id": 0})
            .sort([("changed_at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit)
        )
        return [_audit_from_bson(raw) for raw in await _guard(cursor.to_list())]

    async def ping(self) -> None:
        await _guard(self._client.admin.command("ping"))

    async def close(self) -> None:
        if self._owns_client:
            await self._client.close()


async def ensure_indexes(client: AsyncMongoClient[MongoDocument], database: str) -> None:
    """Create every index of the three collections (idempotent)."""
    await MongoConfigRepository(client, database).ensure_indexes()
    await MongoAuditLog(client, database).ensure_indexes()
