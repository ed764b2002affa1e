-- Back to a schema the older version reads: Microsoft channels (and, by cascade, their
-- tokens) go, and so does the account's directory. The kind CHECK keeps allowing
-- `microsoft`, as on SQLite (where narrowing it would mean rebuilding `channels` again):
-- the older version never writes that kind, and `up` replaces the constraint.
DELETE FROM channels WHERE kind = 'microsoft';
ALTER TABLE oauth_tokens DROP COLUMN account_tenant;
