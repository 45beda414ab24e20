-- Canary deploys: while a row is here, `share_ppm` millionths of the function's
-- invocations run its serving version and the rest run `previous`, the version that
-- served before the deploy; written in the deploy's transaction, removed when the canary
-- is promoted or rolled back (by whichever node takes the row first).
CREATE TABLE canaries (
    function TEXT PRIMARY KEY,
    previous BIGINT NOT NULL,
    share_ppm BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL
);
CREATE TRIGGER canaries_inserted AFTER INSERT ON canaries BEGIN UPDATE control_changes SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER canaries_updated AFTER UPDATE ON canaries BEGIN UPDATE control_changes SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER canaries_deleted AFTER DELETE ON canaries BEGIN UPDATE control_changes SET seq = seq + 1 WHERE id = 1; END;
