-- Pacing (#18). The earliest instant (microseconds) a channel may send again: set in the same
-- transaction that takes its quota, so a jittered minimum gap, or the spacing that spreads a
-- day's cap over its window, holds across every process on the database. No foreign key, as
-- for channel_usage: the shared pool has no channel row.
CREATE TABLE channel_pacing (
    channel_id TEXT PRIMARY KEY NOT NULL,
    next_send_after BIGINT NOT NULL
);

-- The tenant's defaults for channels that set none (JSON: {windows?, per_day_messages?}).
ALTER TABLE tenants ADD COLUMN sending_defaults TEXT;
