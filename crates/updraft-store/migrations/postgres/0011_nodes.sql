-- The cluster's members. Each node writes its own row: at start (a new epoch, so a
-- restarted node's older writes can be told apart), every heartbeat (its load and
-- warm functions), and when it leaves. Times are the database's clock, the one clock
-- every node shares; a node whose heartbeat is older than the dead-after time is dead.
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    epoch BIGINT NOT NULL,
    address TEXT NOT NULL,
    version TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    -- Invocations running on it, instances alive, and the functions those serve
    -- (names separated by spaces).
    in_flight BIGINT NOT NULL DEFAULT 0,
    instances BIGINT NOT NULL DEFAULT 0,
    warm_functions TEXT NOT NULL DEFAULT '',
    -- NULL while it runs; when it stopped cleanly.
    left_at BIGINT
);
