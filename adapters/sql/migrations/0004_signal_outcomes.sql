-- 0004_signal_outcomes (MySQL / MariaDB): published signals and their live outcomes
-- (issue 14), one row per signal id, replaced as the outcome grows. The record itself is
-- JSON text (adapters/wire/outcomes.py); the columns beside it are what queries filter on.
-- Idempotent. The SQLite twin is 0004_signal_outcomes.sqlite.sql; the SQLAlchemy table is
-- adapters/sql/outcome_store.py's OUTCOME_TABLE.

CREATE TABLE IF NOT EXISTS signal_outcomes (
    id             BIGINT       NOT NULL AUTO_INCREMENT,
    signal_id      VARCHAR(64)  NOT NULL,
    strategy_id    VARCHAR(100) NOT NULL,
    symbol         VARCHAR(32)  NOT NULL,
    config_version BIGINT       NOT NULL,
    signal_time_ms BIGINT       NOT NULL,
    recorded_at_ms BIGINT       NOT NULL,
    document       MEDIUMTEXT   NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_signal_outcomes_signal_id (signal_id),
    KEY ix_signal_outcomes_strategy_time (strategy_id, signal_time_ms),
    KEY ix_signal_outcomes_time (signal_time_ms),
    KEY ix_signal_outcomes_recorded (recorded_at_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
