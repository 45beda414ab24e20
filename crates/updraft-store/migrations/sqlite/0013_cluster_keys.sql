-- Keys sealed with the operator's cluster key (not with the secrets key, so rotating
-- the secrets key does not touch them): the cluster's secrets key itself.
CREATE TABLE cluster_keys (
    name TEXT PRIMARY KEY,
    sealed TEXT NOT NULL
);
CREATE TRIGGER cluster_keys_inserted AFTER INSERT ON cluster_keys BEGIN UPDATE control_changes SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER cluster_keys_updated AFTER UPDATE ON cluster_keys BEGIN UPDATE control_changes SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER cluster_keys_deleted AFTER DELETE ON cluster_keys BEGIN UPDATE control_changes SET seq = seq + 1 WHERE id = 1; END;
