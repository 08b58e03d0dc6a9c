-- 0002_strategy_sequences (MySQL / MariaDB): one row per strategy, the lock that serialises
-- every write to any layer of the strategy (and its audit record) and the last version of
-- the strategy's sequence. Idempotent. Rows are created on the first write of a strategy.

CREATE TABLE IF NOT EXISTS strategy_config_sequences (
    strategy_id VARCHAR(100) NOT NULL,
    version     BIGINT       NOT NULL,
    PRIMARY KEY (strategy_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
