-- Span links: a queue message keeps the trace context it was sent under, and the
-- invocation that handles a batch of messages links its span to each of them
-- (W3C `traceparent` values, space-separated; NULL for none).
ALTER TABLE queue_messages ADD COLUMN traceparent TEXT;
ALTER TABLE invocations ADD COLUMN links TEXT;
