-- Cancelled messages become failed ones; the CHECK keeps `cancelled` (harmless).
UPDATE messages SET status = 'failed' WHERE status = 'cancelled';
ALTER TABLE messages DROP COLUMN send_at;
