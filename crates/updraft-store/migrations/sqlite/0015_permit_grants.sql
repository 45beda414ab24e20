-- Each node's share of each concurrency limit the cluster shares (a reserved function's,
-- or the pool unreserved functions share): granted only while the shares of all nodes
-- stay within the limit, renewed with every heartbeat, and free for others once
-- `expires_at` (the database's clock) has passed.
CREATE TABLE permit_grants (
    scope TEXT NOT NULL,
    node TEXT NOT NULL,
    permits BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (scope, node)
);
