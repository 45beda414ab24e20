-- Secrets set with `updraft secrets set`, sealed (encrypted) with the server's secrets
-- key: functions refer to them by name, and only their names are ever shown.
CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    sealed TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Keys the server makes for itself (the key that signs function tokens), sealed the
-- same way, so that rotating the secrets key re-seals them with everything else.
CREATE TABLE server_keys (
    name TEXT PRIMARY KEY,
    sealed TEXT NOT NULL
);

-- A function's tokens are signed over a random id made when the function is created
-- (a function deleted and made again gets a new one) and a generation that
-- `updraft tokens rotate` raises: either change revokes every earlier token.
ALTER TABLE functions ADD COLUMN token_id TEXT NOT NULL DEFAULT '';
ALTER TABLE functions ADD COLUMN token_generation BIGINT NOT NULL DEFAULT 1;
