UPDATE messages SET status = 'failed' WHERE status = 'cancelled';
DROP INDEX messages_retained;
CREATE INDEX messages_retained ON messages (updated_at) WHERE body IS NOT NULL AND status IN ('sent', 'failed');
ALTER TABLE messages DROP COLUMN send_at;
ALTER TABLE messages DROP CONSTRAINT messages_status_check;
ALTER TABLE messages ADD CONSTRAINT messages_status_check
    CHECK (status IN ('queued', 'sending', 'sent', 'deferred', 'held', 'failed'));
