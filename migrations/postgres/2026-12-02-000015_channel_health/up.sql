-- DNS health of each domain as one channel sends it (SPF for its relay, return path, DKIM,
-- DMARC, alignment): the last run per (tenant, channel, domain) as JSON
-- ([{check, status, message, detail}]). The shared pool has no channel row: its fixed id
-- stands in, per tenant, so no foreign key to channels.
CREATE TABLE channel_domain_health (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    channel_id TEXT NOT NULL,
    domain TEXT NOT NULL,
    checks TEXT NOT NULL,
    checked_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, channel_id, domain)
);
