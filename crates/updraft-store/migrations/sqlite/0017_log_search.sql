-- Log search: each line's level (OpenTelemetry's severity number at the start of the
-- level's range; lines stored before this are INFO), and lines by request id for an
-- invocation's own output.
ALTER TABLE log_lines ADD COLUMN level BIGINT NOT NULL DEFAULT 9;
CREATE INDEX log_lines_by_request ON log_lines(request_id);
