"""SQL adapters (SQLAlchemy asyncio): configuration layers and audit trail on MySQL / MariaDB
(the production fallback, ``mysql+aiomysql``) and SQLite (the embedded default,
``sqlite+aiosqlite``), plus the shipped schema migrations."""

from adapters.sql.config_store import (
    MySqlAuditLog,
    MySqlConfigRepository,
    SqlAuditLog,
    SqlConfigRepository,
    SqlConfigUnitOfWork,
    SqlPauseStore,
    create_sql_engine,
    mysql_url,
    parse_mysql_uri,
    sql_url,
)
from adapters.sql.migrations import TABLES, migrate

__all__ = [
    "TABLES",
    "MySqlAuditLog",
    "MySqlConfigRepository",
    "SqlAuditLog",
    "SqlConfigRepository",
    "SqlConfigUnitOfWork",
    "SqlPauseStore",
    "create_sql_engine",
    "migrate",
    "mysql_url",
    "parse_mysql_uri",
    "sql_url",
]
