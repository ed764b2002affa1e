-- Scheduled sending and cancelling (issue 18): `send_at` is the time the client asked for
-- (shown back; `next_attempt_at` already makes the claim wait for it), and a message still
-- waiting can be `cancelled`.
--
-- SQLite cannot alter a CHECK constraint, so `messages` is rebuilt. The migration runs inside
-- the harness's transaction, where `PRAGMA foreign_keys = OFF` is ignored: dropping the old
-- table therefore cascades to the rows that reference it (message_events,
-- unsubscribe_tokens). Those rows are set aside first and put back afterwards.
CREATE TEMP TABLE saved_message_events AS SELECT * FROM message_events;
CREATE TEMP TABLE saved_unsubscribe_tokens AS SELECT * FROM unsubscribe_tokens;

CREATE TABLE messages_rebuilt (
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
    status TEXT NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'deferred', 'held', 'failed', 'cancelled')),
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
    recipients TEXT,
    failed_recipients BIGINT NOT NULL DEFAULT 0,
    personal_gmail BIGINT NOT NULL DEFAULT 0,
    send_at BIGINT,
    UNIQUE (tenant_id, idempotency_key),
    FOREIGN KEY (tenant_id, sender_user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
INSERT INTO messages_rebuilt (id, tenant_id, sender_user_id, idempotency_key, message_id_header, from_address, from_email, recipient_count, subject, envelope, body, size_bytes, status, hold_reason, channel_id, route, attempts, next_attempt_at, lease_owner, lease_until, last_error, created_at, updated_at, sent_at, recipients, failed_recipients, personal_gmail)
    SELECT id, tenant_id, sender_user_id, idempotency_key, message_id_header, from_address, from_email, recipient_count, subject, envelope, body, size_bytes, status, hold_reason, channel_id, route, attempts, next_attempt_at, lease_owner, lease_until, last_error, created_at, updated_at, sent_at, recipients, failed_recipients, personal_gmail FROM messages;
DROP TABLE messages;
ALTER TABLE messages_rebuilt RENAME TO messages;

CREATE INDEX messages_due ON messages (next_attempt_at) WHERE status IN ('queued', 'deferred');
CREATE INDEX messages_leased ON messages (lease_until) WHERE status = 'sending';
CREATE INDEX messages_held ON messages (tenant_id, channel_id, created_at) WHERE status = 'held';
CREATE INDEX messages_tenant ON messages (tenant_id, created_at);
CREATE INDEX messages_channel_sent ON messages (channel_id, sent_at) WHERE sent_at IS NOT NULL;
-- Retention: finished messages (a cancelled one is finished too) whose body is still kept.
CREATE INDEX messages_retained ON messages (updated_at) WHERE body IS NOT NULL AND status IN ('sent', 'failed', 'cancelled');
CREATE INDEX messages_personal_gmail ON messages (tenant_id, sent_at, from_email, personal_gmail)
    WHERE personal_gmail > 0;

INSERT INTO message_events SELECT * FROM saved_message_events;
INSERT INTO unsubscribe_tokens SELECT * FROM saved_unsubscribe_tokens;
DROP TABLE saved_message_events;
DROP TABLE saved_unsubscribe_tokens;
