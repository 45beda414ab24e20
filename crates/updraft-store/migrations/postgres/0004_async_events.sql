-- Asynchronous invocations waiting to run (or to run again). A row is written, and
-- committed, before the caller is told 202; it leaves the table when the invocation
-- succeeds, and stays with state 'failed' when it has run out of attempts.
CREATE TABLE async_events (
    id TEXT PRIMARY KEY,
    function TEXT NOT NULL,
    payload BYTEA NOT NULL,
    trace_id TEXT NOT NULL,
    enqueued_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    state TEXT NOT NULL,
    last_error TEXT
);
CREATE INDEX async_events_due ON async_events(state, next_attempt_at);
