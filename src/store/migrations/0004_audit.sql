-- kmsd schema, version 4: the audit trail and key configuration history.

-- One row per call. `body` is the canonical JSON that is hashed:
-- hash = SHA-256(prev_hash || body). The other columns are copies of the
-- body's fields for searching; VerifyTrail checks they agree with it.
CREATE TABLE audit_events (
    -- AUTOINCREMENT: never reuse a sequence, even after pruning empties the table.
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ms       INTEGER NOT NULL,
    account_id    TEXT NOT NULL,
    principal_arn TEXT NOT NULL,
    operation     TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    key_arns      TEXT NOT NULL,
    body          TEXT NOT NULL,
    prev_hash     BLOB NOT NULL,
    hash          BLOB NOT NULL
) STRICT;
CREATE INDEX audit_by_account ON audit_events(account_id, seq);
CREATE INDEX audit_by_time ON audit_events(time_ms);

-- Where retention last cut the chain: the last pruned event and its hash.
CREATE TABLE audit_anchor (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    seq       INTEGER NOT NULL,
    hash      BLOB NOT NULL,
    pruned_ms INTEGER NOT NULL
) STRICT;

-- Attempts to use a key pending deletion, per key.
CREATE TABLE pending_use_counts (
    key_arn TEXT PRIMARY KEY,
    count   INTEGER NOT NULL
) STRICT;

-- Every configuration a key has had (kept after the key is destroyed).
CREATE TABLE key_config_history (
    key_id     TEXT NOT NULL,
    version    INTEGER NOT NULL,
    account_id TEXT NOT NULL,
    changed_ms INTEGER NOT NULL,
    config     TEXT NOT NULL,
    PRIMARY KEY (key_id, version)
) STRICT;
