-- Suppression list and one-click unsubscribe (issue 16).
-- A tenant's suppressed recipients: no mail of theirs goes to these addresses unless the
-- message is transactional. Addresses are stored lower-case (the form messages are
-- compared in). `message_id` is the message whose unsubscribe link added the address;
-- `created_by` the user who added it by hand.
CREATE TABLE suppressions (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    reason TEXT NOT NULL CHECK (reason IN ('unsubscribed', 'hard_bounce', 'manual')),
    message_id TEXT,
    created_by TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, address)
);
-- The list, newest first.
CREATE INDEX suppressions_recent ON suppressions (tenant_id, created_at, address);

-- The tokens of unsubscribe links, created with their message: only the SHA-256 of the
-- token is kept, bound to the tenant, the one recipient and the message.
CREATE TABLE unsubscribe_tokens (
    token_hash BYTEA PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    message_id TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);

-- Unsubscribe headers on every message that does not say otherwise.
ALTER TABLE tenants ADD COLUMN unsubscribe_by_default BOOLEAN NOT NULL DEFAULT FALSE;
