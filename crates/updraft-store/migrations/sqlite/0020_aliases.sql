-- Aliases: a name for one version of a function (or for the version serving), with an
-- optional second version that takes a share of its invocations (Lambda's aliases and
-- their routing configuration). `version` 0 is the version serving; `routing` is JSON,
-- {"VERSION": WEIGHT} with weights from 0 to 1. Changes reach every node like deploys.
CREATE TABLE aliases (
    function TEXT NOT NULL,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    routing TEXT NOT NULL,
    description TEXT NOT NULL,
    revision TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (function, name)
);
CREATE TRIGGER aliases_inserted AFTER INSERT ON aliases BEGIN UPDATE control_changes SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER aliases_updated AFTER UPDATE ON aliases BEGIN UPDATE control_changes SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER aliases_deleted AFTER DELETE ON aliases BEGIN UPDATE control_changes SET seq = seq + 1 WHERE id = 1; END;
