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

Writes through :class:`MongoConfigUnitOfWork` (ADR 21) serialise per strategy with a
compare-and-set on the strategy's document in ``strategy_config_sequences``
(``{_id: strategy_id, version, pending?}``): the write reads the sequence version and the
layers, and commits by moving the sequence from that version to the new one *and* storing
the layer and its audit record in the same document as ``pending`` (an outbox; one document
update is atomic without a replica set). A write that lost the race conflicts and is retried
on fresh layers. The outbox is then applied (layer upserted if older, audit record inserted
under ``_id = "<strategy>:<version>"``, both idempotent) and cleared; whatever a crash left
pending is completed by the next write of the strategy and by every ``list()`` (so by the
start-up refresh). Audit records are stored at most once per (strategy, version).

Signal pause switches live in ``signal_pauses`` (``_id`` = the pause key, ``{strategy_id,
symbol, active, version, updated_at, updated_by, reason}``) and are written the same way:
the outbox of the paused strategy's sequence (``*`` for every strategy) carries the pause
instead of a layer. The pause's compare-and-set on its key's version (the state the use case
decided on) is checked after the sequence is read, so the sequence compare-and-set at commit
makes it exact: any other write of the key moves the sequence in between.

Datetimes are BSON dates (millisecond precision, UTC); the client is built with
``tz_aware=True`` so they come back as aware UTC datetimes. Every failure to reach or use
the server becomes :class:`~application.ports.StoreUnavailableError`, and the client's short
server-selection timeout (2 s by default) makes a dead server fail fast.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar

import structlog
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
from application.ports import StoreUnavailableError, VersionConflictError, check_pause_version
from domain.config import AuditAction, AuditQuery, AuditRecord, ConfigDocument
from domain.governance import Pause, PauseRecord
from domain.params import ParamValue

GLOBAL_COLLECTION: Final = "strategy_configs_global"
SYMBOL_COLLECTION: Final = "strategy_configs_symbol"
AUDIT_COLLECTION: Final = "strategy_config_audit"
SEQUENCE_COLLECTION: Final = "strategy_config_sequences"
PAUSE_COLLECTION: Final = "signal_pauses"
DEFAULT_DATABASE: Final = "petrosa"
SOURCE: Final = "mongodb"

MongoDocument = dict[str, Any]
T = TypeVar("T")

_log = structlog.get_logger(__name__)


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


class _Collections:
    """The four collections of one database."""

    def __init__(self, client: AsyncMongoClient[MongoDocument], database: str) -> None:
        db: AsyncDatabase[MongoDocument] = client[database]
        self.global_: AsyncCollection[MongoDocument] = db[GLOBAL_COLLECTION]
        self.symbol: AsyncCollection[MongoDocument] = db[SYMBOL_COLLECTION]
        self.audit: AsyncCollection[MongoDocument] = db[AUDIT_COLLECTION]
        self.sequences: AsyncCollection[MongoDocument] = db[SEQUENCE_COLLECTION]
        self.pauses: AsyncCollection[MongoDocument] = db[PAUSE_COLLECTION]

    def layer(
        self, strategy_id: str, symbol: str | None
    ) -> tuple[AsyncCollection[MongoDocument], MongoDocument]:
        if symbol is None:
            return self.global_, {"strategy_id": strategy_id}
        return self.symbol, {"strategy_id": strategy_id, "symbol": symbol}

    async def list_layers(self, strategy_id: str | None) -> list[ConfigDocument]:
        query: MongoDocument = {} if strategy_id is None else {"strategy_id": strategy_id}
        globals_ = await _guard(self.global_.find(query, {"_id": 0}).to_list())
        symbols = await _guard(self.symbol.find(query, {"_id": 0}).to_list())
        documents = [_document_from_bson(raw, None) for raw in globals_]
        documents += [_document_from_bson(raw, str(raw["symbol"])) for raw in symbols]
        documents.sort(key=lambda d: (d.strategy_id, d.symbol is not None, d.symbol or ""))
        return documents

    async def insert_audit(self, raw: MongoDocument) -> bool:
        """Insert an audit record unless its (strategy, version) has one; True if inserted."""
        key = {"strategy_id": raw["strategy_id"], "version": raw["version"]}
        if await _guard(self.audit.find_one(key, {"_id": 1})) is not None:
            return False
        try:
            await _guard(
                self.audit.insert_one({**raw, "_id": f"{raw['strategy_id']}:{raw['version']}"})
            )
        except DuplicateKeyError:
            return False
        return True

    async def apply_layer(self, raw: MongoDocument) -> None:
        """Upsert a layer unless the store holds that version or a newer one (idempotent)."""
        symbol = raw.get("symbol")
        collection, key = self.layer(raw["strategy_id"], symbol)
        fields = {name: raw[name] for name in ("parameters", "version", "updated_at", "updated_by")}
        on_insert = {"created_at": raw["updated_at"], "created_by": raw["updated_by"]}
        # A duplicate key: the layer is at this version or a newer one already.
        with contextlib.suppress(DuplicateKeyError):
            await _guard(
                collection.update_one(
                    {**key, "version": {"$lt": raw["version"]}},
                    {"$set": fields, "$setOnInsert": {**on_insert, "metadata": {}}},
                    upsert=True,
                )
            )

    async def apply_pause(self, raw: MongoDocument) -> bool:
        """Upsert a pause unless the store holds its key at that version or newer."""
        fields = {k: v for k, v in raw.items() if k != "_id"}
        try:
            await _guard(
                self.pauses.update_one(
                    {"_id": raw["_id"], "version": {"$lt": raw["version"]}},
                    {"$set": fields},
                    upsert=True,
                )
            )
        except DuplicateKeyError:  # held at this version or a newer one
            return False
        return True

    async def complete(self, strategy_id: str, pending: MongoDocument) -> None:
        """Apply a committed outbox entry and clear it (idempotent: safe to run twice)."""
        if "document" in pending:
            await self.apply_layer(pending["document"])
        if "pause" in pending:
            await self.apply_pause(pending["pause"])
        await self.insert_audit(pending["record"])
        await _guard(
            self.sequences.update_one(
                {"_id": strategy_id, "pending.version": pending["version"]},
                {"$unset": {"pending": ""}},
            )
        )

    async def complete_pending(self, strategy_id: str | None) -> None:
        """Complete every outbox entry a crash or an outage left (of one strategy or all)."""
        query: MongoDocument = {"pending": {"$exists": True}}
        if strategy_id is not None:
            query["_id"] = strategy_id
        for raw in await _guard(self.sequences.find(query).to_list()):
            await self.complete(str(raw["_id"]), raw["pending"])
            _log.info("config_outbox_completed", strategy_id=raw["_id"])


def _pause_to_bson(record: PauseRecord) -> MongoDocument:
    return {
        "_id": record.key,
        "strategy_id": record.pause.strategy_id,
        "symbol": record.pause.symbol,
        "active": record.active,
        "version": record.version,
        "updated_at": to_bson_datetime(record.updated_at),
        "updated_by": record.updated_by,
        "reason": record.reason,
    }


def _pause_from_bson(raw: MongoDocument) -> PauseRecord:
    strategy_id, symbol = raw.get("strategy_id"), raw.get("symbol")
    return PauseRecord(
        pause=Pause(
            None if strategy_id is None else str(strategy_id),
            None if symbol is None else str(symbol),
        ),
        active=bool(raw["active"]),
        version=int(raw["version"]),
        updated_at=_from_bson_datetime(raw["updated_at"]),
        updated_by=str(raw.get("updated_by", "")),
        reason=str(raw.get("reason", "")),
        source=SOURCE,
    )


class MongoPauseStore:
    """:class:`~application.ports.PauseStore` on the ``signal_pauses`` collection."""

    name: str = SOURCE

    def __init__(
        self, client: AsyncMongoClient[MongoDocument], database: str = DEFAULT_DATABASE
    ) -> None:
        self._collections = _Collections(client, database)

    async def list(self) -> list[PauseRecord]:
        """Every pause record, after completing any pending outbox entry."""
        await self._collections.complete_pending(None)
        raws = await _guard(self._collections.pauses.find({}).sort("_id", ASCENDING).to_list())
        return [_pause_from_bson(raw) for raw in raws]

    async def apply(self, record: PauseRecord) -> bool:
        """Store a copy (the sequence moves to at least its version first, so a concurrent
        unit of work of the same sequence conflicts)."""
        await _guard(
            self._collections.sequences.update_one(
                {"_id": record.sequence_key},
                {"$max": {"version": record.version}},
                upsert=True,
            )
        )
        return await self._collections.apply_pause(_pause_to_bson(record))


def _layer_to_bson(document: ConfigDocument) -> MongoDocument:
    updated_at = to_bson_datetime(document.updated_at)
    raw: MongoDocument = {
        "strategy_id": document.strategy_id,
        "parameters": _encode_parameters(document.parameters),
        "version": document.version,
        "updated_at": updated_at,
        "updated_by": document.updated_by,
    }
    if document.symbol is not None:
        raw["symbol"] = document.symbol
    return raw


class _MongoStore:
    """The client and collections of a store on MongoDB (``name = "mongodb"``); the client
    is closed with the store when the store owns it."""

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
        self._collections = _Collections(client, database)

    async def ping(self) -> None:
        await _guard(self._client.admin.command("ping"))

    async def close(self) -> None:
        if self._owns_client:
            await self._client.close()


class MongoConfigRepository(_MongoStore):
    """:class:`~application.ports.ConfigRepository` on MongoDB (``name = "mongodb"``)."""

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
            self._collections.global_.create_index(
                [("strategy_id", ASCENDING)], unique=True, name="uq_strategy_id"
            )
        )
        await _guard(
            self._collections.symbol.create_index(
                [("strategy_id", ASCENDING), ("symbol", ASCENDING)],
                unique=True,
                name="uq_strategy_id_symbol",
            )
        )

    async def get(self, strategy_id: str, symbol: str | None) -> ConfigDocument | None:
        collection, key = self._collections.layer(strategy_id, symbol)
        raw = await _guard(collection.find_one(key, {"_id": 0}))
        return None if raw is None else _document_from_bson(raw, symbol)

    async def list(self, strategy_id: str | None = None) -> list[ConfigDocument]:
        """Every layer (of one strategy or all), after completing any pending outbox entry."""
        await self._collections.complete_pending(strategy_id)
        return await self._collections.list_layers(strategy_id)

    async def save(self, document: ConfigDocument, expected_version: int) -> None:
        """Compare-and-set one layer (a copy from the other store, say); moves the strategy's
        sequence to at least its version first, so a concurrent unit of work conflicts."""
        await _guard(
            self._collections.sequences.update_one(
                {"_id": document.strategy_id},
                {"$max": {"version": document.version}},
                upsert=True,
            )
        )
        collection, key = self._collections.layer(document.strategy_id, document.symbol)
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


class MongoAuditLog(_MongoStore):
    """:class:`~application.ports.AuditLog` on the ``strategy_config_audit`` collection."""

    async def ensure_indexes(self) -> None:
        await _guard(
            self._collections.audit.create_index(
                [("strategy_id", ASCENDING), ("symbol", ASCENDING), ("changed_at", DESCENDING)],
                name="ix_strategy_symbol_changed_at",
            )
        )
        await _guard(
            self._collections.audit.create_index(
                [("strategy_id", ASCENDING), ("version", ASCENDING)],
                name="ix_strategy_version",
            )
        )

    async def append(self, record: AuditRecord) -> None:
        """Store ``record`` unless the strategy already has one with its version."""
        await self._collections.insert_audit(_audit_to_bson(record))

    async def list(self, query: AuditQuery) -> list[AuditRecord]:
        if query.limit == 0:
            return []
        selector: MongoDocument = {}
        if query.strategy_id is not None:
            selector["strategy_id"] = query.strategy_id
        if query.symbol is not None:
            selector["symbol"] = query.symbol
        bounds: MongoDocument = {}
        if query.since is not None:
            bounds["$gte"] = to_bson_datetime(query.since)
        if query.until is not None:
            bounds["$lt"] = to_bson_datetime(query.until)
        if bounds:
            selector["changed_at"] = bounds
        if (after := query.after) is not None:
            at = to_bson_datetime(after.changed_at)
            selector["$or"] = [
                {"changed_at": {"$lt": at}},
                {"changed_at": at, "strategy_id": {"$lt": after.strategy_id}},
                {
                    "changed_at": at,
                    "strategy_id": after.strategy_id,
                    "version": {"$lt": after.version},
                },
            ]
        cursor = (
            self._collections.audit.find(selector, {"_id": 0})
            .sort(
                [("changed_at", DESCENDING), ("strategy_id", DESCENDING), ("version", DESCENDING)]
            )
            .limit(query.limit)
        )
        return [_audit_from_bson(raw) for raw in await _guard(cursor.to_list())]


class _MongoTransaction:
    """The body of one :meth:`MongoConfigUnitOfWork.write`: collects the layer and record."""

    store_name = SOURCE

    def __init__(self, collections: _Collections, strategy_id: str, sequence: int) -> None:
        self._collections = collections
        self._strategy_id = strategy_id
        self._sequence = sequence
        self.document: ConfigDocument | None = None
        self.pause: PauseRecord | None = None
        self.record: AuditRecord | None = None

    async def layers(self) -> list[ConfigDocument]:
        return await self._collections.list_layers(self._strategy_id)

    async def next_version(self) -> int:
        layers = await self.layers()
        return max([self._sequence, *(d.version for d in layers)]) + 1

    async def save(self, document: ConfigDocument, expected_version: int) -> None:
        self.document = document  # the sequence compare-and-set covers every layer

    async def save_pause(self, record: PauseRecord, expected_version: int) -> None:
        """Compare-and-set on the key's stored version: read after the sequence, so the
        sequence compare-and-set at commit covers the read (as it covers the layers)."""
        raw = await _guard(self._collections.pauses.find_one({"_id": record.key}, {"version": 1}))
        check_pause_version(record, 0 if raw is None else int(raw["version"]), expected_version)
        self.pause = record

    async def append(self, record: AuditRecord) -> None:
        self.record = record


class MongoConfigUnitOfWork:
    """:class:`~application.ports.ConfigUnitOfWork` on MongoDB: compare-and-set on the
    strategy's sequence document, with the layer and audit record as its outbox."""

    name: str = SOURCE

    def __init__(
        self, client: AsyncMongoClient[MongoDocument], database: str = DEFAULT_DATABASE
    ) -> None:
        self._collections = _Collections(client, database)

    @asynccontextmanager
    async def write(self, strategy_id: str) -> AsyncIterator[_MongoTransaction]:
        collections = self._collections
        await collections.complete_pending(strategy_id)
        sequence = await _guard(collections.sequences.find_one({"_id": strategy_id}))
        held = 0 if sequence is None else int(sequence.get("version", 0))
        transaction = _MongoTransaction(collections, strategy_id, held)
        yield transaction
        document, pause, record = transaction.document, transaction.pause, transaction.record
        if record is None or (document is None and pause is None):
            return  # nothing written (a dry run)
        version = record.version
        pending: MongoDocument = {"version": version, "record": _audit_to_bson(record)}
        if document is not None:
            pending["document"] = _layer_to_bson(document)
        if pause is not None:
            pending["pause"] = _pause_to_bson(pause)
        conflict = VersionConflictError(f"{strategy_id}: another write took the next version first")
        if sequence is None:
            try:
                await _guard(
                    collections.sequences.insert_one(
                        {"_id": strategy_id, "version": version, "pending": pending}
                    )
                )
            except DuplicateKeyError as exc:
                raise conflict from exc
        else:
            if version <= held or "pending" in sequence:
                raise conflict
            result = await _guard(
                collections.sequences.update_one(
                    {"_id": strategy_id, "version": held, "pending": {"$exists": False}},
                    {"$set": {"version": version, "pending": pending}},
                )
            )
            if result.matched_count != 1:
                raise conflict
        # Committed: the outbox holds it. Applying it can be finished by anyone later.
        try:
            await collections.complete(strategy_id, pending)
        except StoreUnavailableError as error:
            _log.warning(
                "config_outbox_pending",
                strategy_id=strategy_id,
                version=version,
                error=str(error),
            )


async def ensure_indexes(client: AsyncMongoClient[MongoDocument], database: str) -> None:
    """Create every index of the three collections (idempotent)."""
    await MongoConfigRepository(client, database).ensure_indexes()
    await MongoAuditLog(client, database).ensure_indexes()
