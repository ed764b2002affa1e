-- Scheduled sending and cancelling (issue 18): `send_at` is the time the client asked for
-- (shown back; `next_attempt_at` already makes the claim wait for it), and a message still
-- waiting can be `cancelled`.
ALTER TABLE messages DROP CONSTRAINT messages_status_check;
ALTER TABLE messages ADD CONSTRAINT messages_status_check
    CHECK (status IN ('queued', 'sending', 'sent', 'deferred', 'held', 'failed', 'cancelled'));
ALTER TABLE messages ADD COLUMN send_at BIGINT;
-- Retention: finished messages (a cancelled one is finished too) whose body is still kept.
DROP INDEX messages_retained;
CREATE INDEX messages_retained ON messages (updated_at) WHERE body IS NOT NULL AND status IN ('sent', 'failed', 'cancelled');
