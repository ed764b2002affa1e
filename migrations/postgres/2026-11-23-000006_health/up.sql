-- Channel health: a run of temporary failures (how many, since when, the last error) turns
-- an active channel `failing`; a success ends the run. `next_check_at` is when the channel
-- is next due for a scheduled check; processes claim a check by moving it forward.
ALTER TABLE channels ADD COLUMN failure_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE channels ADD COLUMN first_failure_at BIGINT;
ALTER TABLE channels ADD COLUMN last_error TEXT;
ALTER TABLE channels ADD COLUMN last_error_at BIGINT;
ALTER TABLE channels ADD COLUMN status_changed_at BIGINT;
ALTER TABLE channels ADD COLUMN next_check_at BIGINT;

-- Webhooks of a tenant. The signing secret is sealed (secrets, owner_id = webhook id, field
-- signing_secret). `events` is a JSON array of event types.
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    description TEXT,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    created_by TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX webhooks_tenant ON webhooks (tenant_id);

-- The durable queue of notifications, one row per recipient: a webhook delivery or an
-- email. Workers claim due rows with a lease; a row is kept as the delivery log.
CREATE TABLE notifications (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    kind TEXT NOT NULL,
    webhook_id TEXT REFERENCES webhooks (id) ON DELETE CASCADE,
    recipient TEXT,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    last_status_code BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
CREATE INDEX notifications_webhook ON notifications (webhook_id, created_at);

-- Events that must be raised once per period (quota.near_limit): the first insert wins.
CREATE TABLE notification_marks (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    mark TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, mark)
);
