-- kmsd schema, version 3: grants.
-- operations: comma-separated AWS names; constraints: JSON or NULL.
CREATE TABLE grants (
    grant_id           TEXT PRIMARY KEY,
    key_id             TEXT NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
    name               TEXT NOT NULL,
    grantee            TEXT NOT NULL,
    retiring_principal TEXT NOT NULL,
    issuing_account    TEXT NOT NULL,
    operations         TEXT NOT NULL,
    constraints        TEXT,
    created_ms         INTEGER NOT NULL
) STRICT;
CREATE INDEX grants_by_key ON grants(key_id, grant_id);
CREATE INDEX grants_by_grantee ON grants(key_id, grantee);
CREATE INDEX grants_by_retiring ON grants(retiring_principal, grant_id);
