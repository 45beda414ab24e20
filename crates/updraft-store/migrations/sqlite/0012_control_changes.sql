-- What every node must agree on (apps, functions, versions, keys, secrets) changes
-- only with this counter, raised by triggers in the same transaction (PostgreSQL also
-- notifies; on SQLite there is one node, and the counter keeps the two alike).
CREATE TABLE control_changes (id INTEGER PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL);
INSERT INTO control_changes (id, seq) VALUES (1, 0);

CREATE TRIGGER apps_inserted AFTER INSERT ON apps BEGIN UPDATE control_changes SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER apps_updated AFTER UPDATE ON apps BEGIN UPDATE control_changes SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER apps_deleted AFTER DELETE ON apps BEGIN UPDATE control_changes SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER functions_inserted AFTER INSERT ON functions BEGIN UPDATE control_changes SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER functions_updated AFTER UPDATE ON functions BEGIN UPDATE control_changes SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER functions_deleted AFTER DELETE ON functions BEGIN UPDATE control_changes SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER versions_inserted AFTER INSERT ON versions BEGIN UPDATE control_changes SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER versions_updated AFTER UPDATE ON versions BEGIN UPDATE control_changes SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER versions_deleted AFTER DELETE ON versions BEGIN UPDATE control_changes SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER api_keys_inserted AFTER INSERT ON api_keys BEGIN UPDATE control_changes SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER api_keys_updated AFTER UPDATE ON api_keys BEGIN UPDATE control_changes SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER api_keys_deleted AFTER DELETE ON api_keys BEGIN UPDATE control_changes SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER access_keys_inserted AFTER INSERT ON access_keys BEGIN UPDATE control_changes SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER access_keys_updated AFTER UPDATE ON access_keys BEGIN UPDATE control_changes SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER access_keys_deleted AFTER DELETE ON access_keys BEGIN UPDATE control_changes SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER secrets_inserted AFTER INSERT ON secrets BEGIN UPDATE control_changes SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER secrets_updated AFTER UPDATE ON secrets BEGIN UPDATE control_changes SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER secrets_deleted AFTER DELETE ON secrets BEGIN UPDATE control_changes SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER server_keys_inserted AFTER INSERT ON server_keys BEGIN UPDATE control_changes SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER server_keys_updated AFTER UPDATE ON server_keys BEGIN UPDATE control_changes SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER server_keys_deleted AFTER DELETE ON server_keys BEGIN UPDATE control_changes SET seq = seq + 1 WHERE id = 1; END;

-- Uploaded code stored in the database, in chunks of at most 1 MiB (used by clusters,
-- on PostgreSQL; the same schema here keeps the two stores' tests alike).
CREATE TABLE artifact_chunks (
    digest TEXT NOT NULL,
    seq BIGINT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (digest, seq)
);
CREATE TABLE shared_artifacts (
    digest TEXT PRIMARY KEY,
    size BIGINT NOT NULL,
    chunks BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
