-- Which node of the cluster ran each invocation.
ALTER TABLE invocations ADD COLUMN node TEXT NOT NULL DEFAULT '';
