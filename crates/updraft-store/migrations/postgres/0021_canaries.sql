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
CREATE TRIGGER canaries_changed AFTER INSERT OR UPDATE OR DELETE ON canaries FOR EACH STATEMENT EXECUTE FUNCTION updraft_control_changed();
