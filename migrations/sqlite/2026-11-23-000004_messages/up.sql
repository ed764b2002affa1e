-- Messages accepted for sending (the outbox). A row is written before the API answers 202
-- and is never deleted while the tenant exists; retention only clears `body`.
--   envelope: JSON {to, cc, bcc} as given (display names kept), kept for the log
--   body:     JSON {reply_to, text, html, headers}; NULL once pruned by retention
--   route:    JSON of the router's last decision (every candidate with its reason)
-- Workers claim due rows (`queued`/`deferred` with next_attempt_at <= now, or `sending`
-- with an expired lease) and own them until lease_until.
CREATE TABLE messages (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    sender_user_id TEXT NOT NULL,
    idempotency_key TEXT,
    message_id_header TEXT NOT NULL,
    from_address TEXT NOT NULL,
    from_email TEXT NOT NULL,
    recipient_count BIGINT NOT NULL,
    subject TEXT NOT NULL,
    envelope TEXT NOT NULL,
    body TEXT,
    size_bytes BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'deferred', 'held', 'failed')),
    hold_reason TEXT,
    channel_id TEXT,
    route TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    sent_at BIGINT,
    UNIQUE (tenant_id, idempotency_key),
    FOREIGN KEY (tenant_id, sender_user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
-- The claim query's two scans, kept small by being partial.
CREATE INDEX messages_due ON messages (next_attempt_at) WHERE status IN ('queued', 'deferred');
CREATE INDEX messages_leased ON messages (lease_until) WHERE status = 'sending';
-- Release of mail held for a channel, oldest first.
CREATE INDEX messages_held ON messages (tenant_id, channel_id, created_at) WHERE status = 'held';
-- Listing a tenant's messages, newest first; quota windows per channel.
CREATE INDEX messages_tenant ON messages (tenant_id, created_at);
CREATE INDEX messages_channel_sent ON messages (channel_id, sent_at) WHERE sent_at IS NOT NULL;
-- Retention: finished messages whose body is still kept, oldest first.
CREATE INDEX messages_retained ON messages (updated_at) WHERE body IS NOT NULL AND status IN ('sent', 'failed');

-- What each channel sent per minute, for its quotas (per minute; recipients per rolling
-- day as the sum of the last 1,440 minutes). Shared by every process on the database.
CREATE TABLE channel_usage (
    channel_id TEXT NOT NULL,
    minute BIGINT NOT NULL,
    messages BIGINT NOT NULL DEFAULT 0,
    recipients BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (channel_id, minute)
);

-- Team kill switch, beside the tenant's.
ALTER TABLE teams ADD COLUMN sending_enabled BOOLEAN NOT NULL DEFAULT TRUE;

-- Every step of a message: accepted, routed, attempt, deferred, held, released, sent, failed.
CREATE TABLE message_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX message_events_message ON message_events (message_id, id);
