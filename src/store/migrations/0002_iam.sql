-- kmsd schema, version 2: groups, roles, inline identity policies, role
-- sessions and MFA devices.
CREATE TABLE groups (
    account_id TEXT NOT NULL REFERENCES accounts(id),
    name       TEXT NOT NULL COLLATE NOCASE,
    group_id   TEXT NOT NULL UNIQUE,
    path       TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (account_id, name)
) STRICT;

CREATE TABLE group_members (
    account_id TEXT NOT NULL,
    group_name TEXT NOT NULL COLLATE NOCASE,
    user_name  TEXT NOT NULL COLLATE NOCASE,
    PRIMARY KEY (account_id, group_name, user_name),
    FOREIGN KEY (account_id, group_name) REFERENCES groups(account_id, name) ON DELETE CASCADE,
    FOREIGN KEY (account_id, user_name) REFERENCES users(account_id, name) ON DELETE CASCADE
) STRICT;
CREATE INDEX group_members_by_user ON group_members(account_id, user_name);

CREATE TABLE roles (
    account_id       TEXT NOT NULL REFERENCES accounts(id),
    name             TEXT NOT NULL COLLATE NOCASE,
    role_id          TEXT NOT NULL UNIQUE,
    path             TEXT NOT NULL,
    trust_policy     TEXT NOT NULL,
    max_session_secs INTEGER NOT NULL,
    description      TEXT NOT NULL,
    created_ms       INTEGER NOT NULL,
    PRIMARY KEY (account_id, name)
) STRICT;

-- principal_type: 'user', 'group' or 'role'.
CREATE TABLE identity_policies (
    account_id     TEXT NOT NULL REFERENCES accounts(id),
    principal_type TEXT NOT NULL CHECK (principal_type IN ('user', 'group', 'role')),
    principal_name TEXT NOT NULL COLLATE NOCASE,
    policy_name    TEXT NOT NULL,
    document       TEXT NOT NULL,
    PRIMARY KEY (account_id, principal_type, principal_name, policy_name)
) STRICT;

-- Temporary credentials from AssumeRole. The secret is wrapped under the
-- root key; only a SHA-256 of the session token is kept.
CREATE TABLE sessions (
    access_key_id  TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL,
    role_name      TEXT NOT NULL COLLATE NOCASE,
    session_name   TEXT NOT NULL,
    wrapped_secret BLOB NOT NULL,
    token_hash     BLOB NOT NULL,
    mfa            INTEGER NOT NULL,
    source_arn     TEXT NOT NULL,
    expires_ms     INTEGER NOT NULL,
    created_ms     INTEGER NOT NULL,
    FOREIGN KEY (account_id, role_name) REFERENCES roles(account_id, name) ON DELETE CASCADE
) STRICT;
CREATE INDEX sessions_by_expiry ON sessions(expires_ms);

-- One TOTP device per user; last_step blocks the replay of a used code.
CREATE TABLE mfa_devices (
    account_id     TEXT NOT NULL,
    user_name      TEXT NOT NULL COLLATE NOCASE,
    serial         TEXT NOT NULL,
    wrapped_secret BLOB NOT NULL,
    last_step      INTEGER NOT NULL,
    created_ms     INTEGER NOT NULL,
    PRIMARY KEY (account_id, user_name),
    FOREIGN KEY (account_id, user_name) REFERENCES users(account_id, name) ON DELETE CASCADE
) STRICT;
