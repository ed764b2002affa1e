-- A paused channel becomes disabled: it must not start sending by itself.
DROP TABLE tenant_bounce_pause;
UPDATE channels SET status = 'disabled' WHERE status = 'paused';
ALTER TABLE channels DROP COLUMN pause_detail;
ALTER TABLE channels DROP COLUMN bounce_window_from;
ALTER TABLE channels DROP COLUMN paused_until;
ALTER TABLE channels DROP CONSTRAINT channels_status_check;
ALTER TABLE channels ADD CONSTRAINT channels_status_check
    CHECK (status IN ('active', 'needs_reauth', 'failing', 'disabled'));
