-- Guest log lines an invocation wrote that were not kept (over its function's log
-- budget, or while the log writer was behind): the record says so instead of the
-- loss going unnoticed.
ALTER TABLE invocations ADD COLUMN log_lines_dropped BIGINT NOT NULL DEFAULT 0;
