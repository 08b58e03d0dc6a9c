-- 0001_initial (SQLite): the twin of 0001_initial.sql for the embedded default store.
-- Same tables, columns, nullability and keys; SQLAlchemy stores DATETIME as ISO text.

CREATE TABLE IF NOT EXISTS strategy_configs_global (
    id          INTEGER      NOT NULL PRIMARY KEY,
    strategy_id VARCHAR(100) NOT NULL,
    parameters  TEXT         NOT NULL,
    version     BIGINT       NOT NULL,
    created_at  DATETIME     NOT NULL,
    updated_at  DATETIME     NOT NULL,
    created_by  VARCHAR(255) NOT NULL,
    updated_by  VARCHAR(255) NOT NULL,
    metadata    TEXT         NOT NULL,
    CONSTRAINT uq_strategy_configs_global_strategy_id UNIQUE (strategy_id)
);

CREATE TABLE IF NOT EXISTS strategy_configs_symbol (
    id          INTEGER      NOT NULL PRIMARY KEY,
    strategy_id VARCHAR(100) NOT NULL,
    symbol      VARCHAR(32)  NOT NULL,
    parameters  TEXT         NOT NULL,
    version     BIGINT       NOT NULL,
    created_at  DATETIME     NOT NULL,
    updated_at  DATETIME     NOT NULL,
    created_by  VARCHAR(255) NOT NULL,
    updated_by  VARCHAR(255) NOT NULL,
    metadata    TEXT         NOT NULL,
    CONSTRAINT uq_strategy_configs_symbol_strategy_id_symbol UNIQUE (strategy_id, symbol)
);

CREATE TABLE IF NOT EXISTS strategy_config_audit (
    id             INTEGER      NOT NULL PRIMARY KEY,
    strategy_id    VARCHAR(100) NOT NULL,
    symbol         VARCHAR(32)  NULL,
    action         VARCHAR(16)  NOT NULL,
    old_parameters TEXT         NULL,
    new_parameters TEXT         NULL,
    changed_by     VARCHAR(255) NOT NULL,
    changed_at     DATETIME     NOT NULL,
    reason         TEXT         NOT NULL,
    version        BIGINT       NOT NULL
);

CREATE INDEX IF NOT EXISTS ix_strategy_config_audit_strategy_symbol_changed_at
    ON strategy_config_audit (strategy_id, symbol, changed_at);

CREATE INDEX IF NOT EXISTS ix_strategy_config_audit_strategy_id_version
    ON strategy_config_audit (strategy_id, version);
