-- What every node must agree on (apps, functions, versions, keys, secrets) changes
-- only with this counter: a statement-level trigger on each of those tables raises it
-- in the same transaction and notifies `updraft_control`, so the notification arrives
-- at commit and a node that missed it still finds the counter moved.
CREATE TABLE control_changes (id INTEGER PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL);
INSERT INTO control_changes (id, seq) VALUES (1, 0);

CREATE FUNCTION updraft_control_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE control_changes SET seq = seq + 1 WHERE id = 1;
    PERFORM pg_notify('updraft_control', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER apps_changed AFTER INSERT OR UPDATE OR DELETE ON apps FOR EACH STATEMENT EXECUTE FUNCTION updraft_control_changed();
CREATE TRIGGER functions_changed AFTER INSERT OR UPDATE OR DELETE ON functions FOR EACH STATEMENT EXECUTE FUNCTION updraft_control_changed();
CREATE TRIGGER versions_changed AFTER INSERT OR UPDATE OR DELETE ON versions FOR EACH STATEMENT EXECUTE FUNCTION updraft_control_changed();
CREATE TRIGGER api_keys_changed AFTER INSERT OR UPDATE OR DELETE ON api_keys FOR EACH STATEMENT EXECUTE FUNCTION updraft_control_changed();
CREATE TRIGGER access_keys_changed AFTER INSERT OR UPDATE OR DELETE ON access_keys FOR EACH STATEMENT EXECUTE FUNCTION updraft_control_changed();
CREATE TRIGGER secrets_changed AFTER INSERT OR UPDATE OR DELETE ON secrets FOR EACH STATEMENT EXECUTE FUNCTION updraft_control_changed();
CREATE TRIGGER server_keys_changed AFTER INSERT OR UPDATE OR DELETE ON server_keys FOR EACH STATEMENT EXECUTE FUNCTION updraft_control_changed();

-- Uploaded code, stored once for the cluster in chunks of at most 1 MiB (so neither
-- side holds a whole artifact in memory); a row in `shared_artifacts` is written after
-- all of its chunks, in the same transaction.
CREATE TABLE artifact_chunks (
    digest TEXT NOT NULL,
    seq BIGINT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (digest, seq)
);
CREATE TABLE shared_artifacts (
    digest TEXT PRIMARY KEY,
    size BIGINT NOT NULL,
    chunks BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
