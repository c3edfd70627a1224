-- kmsd schema, version 5: drop the audit trail's per-account index.
--
-- No query uses it: LookupEvents matches an account by `account_id` OR by
-- the accounts in `key_arns` (a caller sees events on its keys by other
-- accounts too), which SQLite answers by walking the sequence backwards,
-- and every other audit query goes by sequence or by time. Yet every
-- event paid for it: an index insert, and a leaf page or more written to
-- the WAL with every commit.
DROP INDEX IF EXISTS audit_by_account;
