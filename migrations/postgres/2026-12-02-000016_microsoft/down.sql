DELETE FROM channels WHERE kind = 'microsoft';
ALTER TABLE oauth_tokens DROP COLUMN account_tenant;
ALTER TABLE channels DROP CONSTRAINT channels_kind_check;
ALTER TABLE channels ADD CONSTRAINT channels_kind_check
    CHECK (kind IN ('shared_pool', 'smtp', 'gmail'));
