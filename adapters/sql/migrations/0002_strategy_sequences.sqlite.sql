-- 0002_strategy_sequences (SQLite): the twin of 0002_strategy_sequences.sql.

CREATE TABLE IF NOT EXISTS strategy_config_sequences (
    strategy_id VARCHAR(100) NOT NULL PRIMARY KEY,
    version     BIGINT       NOT NULL
);
