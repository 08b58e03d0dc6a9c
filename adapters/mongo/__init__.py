"""MongoDB adapters (PyMongo's native async API): configuration layers and audit trail."""

from adapters.mongo.config_store import (
    AUDIT_COLLECTION,
    DEFAULT_DATABASE,
    GLOBAL_COLLECTION,
    PAUSE_COLLECTION,
    SYMBOL_COLLECTION,
    MongoAuditLog,
    MongoConfigRepository,
    MongoPauseStore,
    create_mongo_client,
    ensure_indexes,
)

__all__ = [
    "AUDIT_COLLECTION",
    "DEFAULT_DATABASE",
    "GLOBAL_COLLECTION",
    "PAUSE_COLLECTION",
    "SYMBOL_COLLECTION",
    "MongoAuditLog",
    "MongoConfigRepository",
    "MongoPauseStore",
    "create_mongo_client",
    "ensure_indexes",
]
