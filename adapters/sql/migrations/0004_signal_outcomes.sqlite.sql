-- 0004_signal_outcomes (SQLite): the twin of 0004_signal_outcomes.sql.

CREATE TABLE IF NOT EXISTS signal_outcomes (
    id             INTEGER      NOT NULL PRIMARY KEY,
    signal_id      VARCHAR(64)  NOT NULL,
    strategy_id    VARCHAR(100) NOT NULL,
    symbol         VARCHAR(32)  NOT NULL,
    config_version BIGINT       NOT NULL,
    signal_time_ms BIGINT       NOT NULL,
    recorded_at_ms BIGINT       NOT NULL,
    document       TEXT         NOT NULL,
    CONSTRAINT uq_signal_outcomes_signal_id UNIQUE (signal_id)
);

CREATE INDEX IF NOT EXISTS ix_signal_outcomes_strategy_time
    ON signal_outcomes (strategy_id, signal_time_ms);

CREATE INDEX IF NOT EXISTS ix_signal_outcomes_time ON signal_outcomes (signal_time_ms);

CREATE INDEX IF NOT EXISTS ix_signal_outcomes_recorded ON signal_outcomes (recorded_at_ms);
