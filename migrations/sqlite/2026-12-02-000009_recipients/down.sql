ALTER TABLE messages DROP COLUMN failed_recipients;
ALTER TABLE messages DROP COLUMN recipients;
