-- 0003_signal_pauses (SQLite): the twin of 0003_signal_pauses.sql.

CREATE TABLE IF NOT EXISTS signal_pauses (
    pause_key   VARCHAR(140) NOT NULL PRIMARY KEY,
    strategy_id VARCHAR(100) NULL,
    symbol      VARCHAR(32)  NULL,
    active      INTEGER      NOT NULL,
    version     BIGINT       NOT NULL,
    updated_at  DATETIME     NOT NULL,
    updated_by  VARCHAR(255) NOT NULL,
    reason      TEXT         NOT NULL
);
