-- 0001_initial (MySQL / MariaDB): the three configuration tables, mirroring MongoDB's
-- collections. Idempotent. Parameters are JSON text written by the application (so that
-- bool / int / float survive exactly); datetimes are UTC with millisecond precision.
-- The SQLite twin is 0001_initial.sqlite.sql; the SQLAlchemy tables in
-- adapters/sql/migrations.py describe the same columns (a test compares all three).

CREATE TABLE IF NOT EXISTS strategy_configs_global (
    id          BIGINT       NOT NULL AUTO_INCREMENT,
    strategy_id VARCHAR(100) NOT NULL,
    parameters  TEXT         NOT NULL,
    version     BIGINT       NOT NULL,
    created_at  DATETIME(3)  NOT NULL,
    updated_at  DATETIME(3)  NOT NULL,
    created_by  VARCHAR(255) NOT NULL,
    updated_by  VARCHAR(255) NOT NULL,
    metadata    TEXT         NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_strategy_configs_global_strategy_id (strategy_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS strategy_configs_symbol (
    id          BIGINT       NOT NULL AUTO_INCREMENT,
    strategy_id VARCHAR(100) NOT NULL,
    symbol      VARCHAR(32)  NOT NULL,
    parameters  TEXT         NOT NULL,
    version     BIGINT       NOT NULL,
    created_at  DATETIME(3)  NOT NULL,
    updated_at  DATETIME(3)  NOT NULL,
    created_by  VARCHAR(255) NOT NULL,
    updated_by  VARCHAR(255) NOT NULL,
    metadata    TEXT         NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_strategy_configs_symbol_strategy_id_symbol (strategy_id, symbol)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS strategy_config_audit (
    id             BIGINT       NOT NULL AUTO_INCREMENT,
    strategy_id    VARCHAR(100) NOT NULL,
    symbol         VARCHAR(32)  NULL,
    action         VARCHAR(16)  NOT NULL,
    old_parameters TEXT         NULL,
    new_parameters TEXT         NULL,
    changed_by     VARCHAR(255) NOT NULL,
    changed_at     DATETIME(3)  NOT NULL,
    reason         TEXT         NOT NULL,
    version        BIGINT       NOT NULL,
    PRIMARY KEY (id),
    KEY ix_strategy_config_audit_strategy_symbol_changed_at (strategy_id, symbol, changed_at),
    KEY ix_strategy_config_audit_strategy_id_version (strategy_id, version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
