-- Where each asynchronous event came from (a topic, a schedule, a webhook, a
-- destination), as JSON; NULL for a plain asynchronous invocation. It decides the
-- shape the function receives the event in.
ALTER TABLE async_events ADD COLUMN source TEXT;

-- The next tick of each schedule trigger. Advancing it and enqueueing the tick's event
-- happen in one transaction, guarded by the tick it expected, so a tick becomes
-- exactly one event however many nodes look and however often the server restarts.
CREATE TABLE schedule_ticks (
    key TEXT PRIMARY KEY,
    function TEXT NOT NULL,
    next_tick_at BIGINT NOT NULL
);
