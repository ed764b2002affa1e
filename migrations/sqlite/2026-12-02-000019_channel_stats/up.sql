-- What each channel did per UTC day, for its dashboard (30 days of sent, deferred, held and
-- failed) and for the bounce rate that can pause it. One row per (tenant, channel, day),
-- incremented in the transaction that records the outcomes, once per channel and batch.
-- The shared pool has no channel row: its fixed id stands in, per tenant, so no foreign key
-- to channels (and a deleted channel's history stays until its tenant goes).
--   deferred: deferrals (a message deferred twice counts twice); held: messages held
--   recipients: recipients that accepted the message; hard_bounces: recipients refused for
--   good as unknown (5.1.x), the same rule that suppresses them
CREATE TABLE channel_daily_stats (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    channel_id TEXT NOT NULL,
    day BIGINT NOT NULL,
    sent BIGINT NOT NULL DEFAULT 0,
    deferred BIGINT NOT NULL DEFAULT 0,
    held BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    recipients BIGINT NOT NULL DEFAULT 0,
    hard_bounces BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, channel_id, day)
);
