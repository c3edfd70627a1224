-- kmsd schema, version 1.
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE accounts (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE users (
    account_id TEXT NOT NULL REFERENCES accounts(id),
    -- IAM user names are not distinguished by case.
    name       TEXT NOT NULL COLLATE NOCASE,
    user_id    TEXT NOT NULL UNIQUE,
    path       TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (account_id, name)
) STRICT;

-- user_name is NULL for an account root's keys.
CREATE TABLE access_keys (
    id             TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL REFERENCES accounts(id),
    user_name      TEXT COLLATE NOCASE,
    wrapped_secret BLOB NOT NULL,
    status         TEXT NOT NULL,
    created_ms     INTEGER NOT NULL,
    FOREIGN KEY (account_id, user_name) REFERENCES users(account_id, name) ON DELETE CASCADE
) STRICT;
CREATE INDEX access_keys_by_user ON access_keys(account_id, user_name);

CREATE TABLE keys (
    id                   TEXT PRIMARY KEY,
    account_id           TEXT NOT NULL REFERENCES accounts(id),
    description          TEXT NOT NULL,
    state                TEXT NOT NULL,
    created_ms           INTEGER NOT NULL,
    deletion_ms          INTEGER,
    pending_window_days  INTEGER,
    rotation_enabled     INTEGER NOT NULL,
    rotation_period_days INTEGER,
    next_rotation_ms     INTEGER,
    current_version      INTEGER NOT NULL,
    policy               TEXT NOT NULL
) STRICT;
CREATE INDEX keys_by_account ON keys(account_id, id);
CREATE INDEX keys_by_deletion ON keys(deletion_ms) WHERE deletion_ms IS NOT NULL;
CREATE INDEX keys_by_rotation ON keys(next_rotation_ms) WHERE next_rotation_ms IS NOT NULL;

-- Wrapped material only: never plaintext key material.
CREATE TABLE key_versions (
    key_id           TEXT NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
    version          INTEGER NOT NULL,
    wrapped_material BLOB NOT NULL,
    created_ms       INTEGER NOT NULL,
    rotation_type    TEXT,
    PRIMARY KEY (key_id, version)
) STRICT;

CREATE TABLE aliases (
    account_id TEXT NOT NULL REFERENCES accounts(id),
    name       TEXT NOT NULL,
    key_id     TEXT NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (account_id, name)
) STRICT;
CREATE INDEX aliases_by_key ON aliases(key_id);

CREATE TABLE tags (
    key_id    TEXT NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
    tag_key   TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (key_id, tag_key)
) STRICT;
