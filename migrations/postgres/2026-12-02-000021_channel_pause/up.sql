-- Channels may be `paused` (issue 18): by the bounce rule, by a provider's sending block, or
-- by an admin. `paused_until` ends a provider's block with a known end (Exchange's rolling
-- 24 h limit); `bounce_window_from` starts the bounce window afresh after a resume;
-- `pause_detail` keeps the figures (JSON) that the channel page and the events show.
ALTER TABLE channels DROP CONSTRAINT channels_status_check;
ALTER TABLE channels ADD CONSTRAINT channels_status_check
    CHECK (status IN ('active', 'needs_reauth', 'failing', 'disabled', 'paused'));
ALTER TABLE channels ADD COLUMN paused_until BIGINT;
ALTER TABLE channels ADD COLUMN bounce_window_from BIGINT;
ALTER TABLE channels ADD COLUMN pause_detail TEXT;

-- A tenant's bounce auto-pause rule; no row means the defaults (3 % over 50 sends in 7 days).
CREATE TABLE tenant_bounce_pause (
    tenant_id TEXT PRIMARY KEY NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    threshold_basis_points BIGINT NOT NULL,
    min_sends BIGINT NOT NULL,
    window_days BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
