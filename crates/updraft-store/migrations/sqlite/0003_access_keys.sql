-- AWS-style access keys for the Lambda-compatible API (SigV4). Unlike bearer API keys,
-- a SigV4 check needs the secret itself, so it is stored sealed (encrypted with the
-- server's secrets key), never in the clear.
CREATE TABLE access_keys (
    id TEXT PRIMARY KEY,
    secret_sealed TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
