-- The control plane: apps, functions, their immutable versions, API keys and logs.
CREATE TABLE apps (
    name TEXT PRIMARY KEY,
    generation BIGINT NOT NULL,
    manifest TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE functions (
    name TEXT PRIMARY KEY,
    app TEXT NOT NULL REFERENCES apps(name),
    current_version BIGINT NOT NULL,
    latest_version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX functions_by_app ON functions(app);

CREATE TABLE versions (
    function TEXT NOT NULL,
    version BIGINT NOT NULL,
    artifact TEXT NOT NULL,
    config TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (function, version)
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE log_lines (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    function TEXT NOT NULL,
    version BIGINT NOT NULL,
    request_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    stream TEXT NOT NULL,
    line TEXT NOT NULL
);
CREATE INDEX log_lines_by_function ON log_lines(function, id);
