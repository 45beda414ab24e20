-- Messages sent to work queues. A message is committed before its sender hears 202;
-- a delivery makes it invisible until visible_at (the visibility timeout) and counts
-- a receive; a successful batch deletes it; after max_receives it moves to the
-- dead-letter queue (its queue column changes), never out of the table unhandled.
CREATE TABLE queue_messages (
    id TEXT PRIMARY KEY,
    queue TEXT NOT NULL,
    body BYTEA NOT NULL,
    content_type TEXT,
    sent_at BIGINT NOT NULL,
    receive_count BIGINT NOT NULL,
    first_received_at BIGINT,
    visible_at BIGINT NOT NULL
);
CREATE INDEX queue_messages_visible ON queue_messages(queue, visible_at);
