-- Traces: where each invocation sits in its trace (the span that caused it, and when
-- the event behind it was accepted), so a trace is read back from the records; events
-- and workflow executions carry the context on to the invocations they cause.
ALTER TABLE invocations ADD COLUMN parent_span_id TEXT;
ALTER TABLE invocations ADD COLUMN queued_since BIGINT;
CREATE INDEX invocations_by_trace ON invocations(trace_id);
ALTER TABLE async_events ADD COLUMN parent_span_id TEXT;
ALTER TABLE workflow_executions ADD COLUMN trace_id TEXT;
ALTER TABLE workflow_executions ADD COLUMN parent_span_id TEXT;
