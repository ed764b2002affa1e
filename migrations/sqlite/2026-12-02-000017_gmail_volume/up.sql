-- Gmail's bulk-sender threshold (issue 16): how many of a message's recipients have personal
-- Gmail addresses, counted once at acceptance, so that the rolling day's total per sending
-- domain is one indexed sum over sent messages rather than a parse of every envelope.
ALTER TABLE messages ADD COLUMN personal_gmail BIGINT NOT NULL DEFAULT 0;
-- Only messages to Gmail are in it; the sum reads the index alone.
CREATE INDEX messages_personal_gmail ON messages (tenant_id, sent_at, from_email, personal_gmail)
    WHERE personal_gmail > 0;
