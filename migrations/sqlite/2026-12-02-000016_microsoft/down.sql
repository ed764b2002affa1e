-- Back to a schema the older version reads: Microsoft channels (and, by cascade, their
-- tokens) go, and so does the account's directory. The kind CHECK keeps allowing
-- `microsoft`: narrowing it would rebuild `channels` once more for nothing, since the older
-- version never writes that kind (and `up` rebuilds the table from scratch anyway).
DELETE FROM channels WHERE kind = 'microsoft';
ALTER TABLE oauth_tokens DROP COLUMN account_tenant;
