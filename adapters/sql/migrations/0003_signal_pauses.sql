-- 0003_signal_pauses (MySQL / MariaDB): the signal pause switches, one row per pause key
-- ("<strategy or *>/<symbol or *>"); a lifted pause keeps its row with active = 0 (its
-- version is not forgotten). Written in the transaction of the audit record, under the
-- lock of the paused strategy's row in strategy_config_sequences ("*" for every strategy).
-- Idempotent.

CREATE TABLE IF NOT EXISTS signal_pauses (
    pause_key   VARCHAR(140) NOT NULL,
    strategy_id VARCHAR(100) NULL,
    symbol      VARCHAR(32)  NULL,
    active      TINYINT(1)   NOT NULL,
    version     BIGINT       NOT NULL,
    updated_at  DATETIME(3)  NOT NULL,
    updated_by  VARCHAR(255) NOT NULL,
    reason      TEXT         NOT NULL,
    PRIMARY KEY (pause_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
