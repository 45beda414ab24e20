-- Keys sealed with the operator's cluster key (not with the secrets key, so rotating
-- the secrets key does not touch them): the cluster's secrets key itself, which every
-- node opens at start instead of reading a file of its own.
CREATE TABLE cluster_keys (
    name TEXT PRIMARY KEY,
    sealed TEXT NOT NULL
);
CREATE TRIGGER cluster_keys_changed AFTER INSERT OR UPDATE OR DELETE ON cluster_keys
    FOR EACH STATEMENT EXECUTE FUNCTION updraft_control_changed();
