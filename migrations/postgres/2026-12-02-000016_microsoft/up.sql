-- Connect Microsoft: channels of kind `microsoft`, and the Microsoft account's directory
-- (`tid`) beside its tokens, since refreshes go to that tenant's endpoint, not `common`.
ALTER TABLE channels DROP CONSTRAINT channels_kind_check;
ALTER TABLE channels ADD CONSTRAINT channels_kind_check
    CHECK (kind IN ('shared_pool', 'smtp', 'gmail', 'microsoft'));
ALTER TABLE oauth_tokens ADD COLUMN account_tenant TEXT;
