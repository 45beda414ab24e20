-- An asynchronous invocation of a version or an alias (Lambda's `Event` with a
-- `Qualifier`): the version number or alias name it runs, resolved when it runs; NULL
-- runs the version serving.
ALTER TABLE async_events ADD COLUMN qualifier TEXT;
