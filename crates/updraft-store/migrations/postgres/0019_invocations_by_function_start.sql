-- A function's records in a time window (the dashboard's charts, summed up per step by
-- the database).
CREATE INDEX invocations_by_function_start ON invocations(function, started_at);
