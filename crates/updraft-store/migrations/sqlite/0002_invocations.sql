-- One row per invocation (throttles included), and usage summed per function per
-- hour in the same transaction, so the two always agree.
CREATE TABLE invocations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    function TEXT NOT NULL,
    version BIGINT NOT NULL,
    trigger_kind TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    duration_ns BIGINT NOT NULL,
    billed_ms BIGINT NOT NULL,
    init_duration_ns BIGINT,
    cold BIGINT NOT NULL,
    memory_limit BIGINT NOT NULL,
    max_memory_used BIGINT NOT NULL,
    status TEXT NOT NULL,
    error_type TEXT,
    error_message TEXT,
    trace_id TEXT NOT NULL
);
CREATE INDEX invocations_by_function ON invocations(function, seq);
CREATE INDEX invocations_by_start ON invocations(started_at);

CREATE TABLE usage_hourly (
    function TEXT NOT NULL,
    hour BIGINT NOT NULL,
    requests BIGINT NOT NULL,
    billed_mib_ms BIGINT NOT NULL,
    cold_starts BIGINT NOT NULL,
    throttles BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    PRIMARY KEY (function, hour)
);
