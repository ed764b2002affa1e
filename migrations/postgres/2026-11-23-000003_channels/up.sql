-- Send channels. The owner is exactly one of a user, a team or the tenant; a mailbox
-- channel is always a user's and names its From address. Settings that nothing queries by
-- (SMTP details, limits, BCC, reply-to, return path) are one JSON document. The credential
-- is not here: it is a sealed secret (secrets, owner_id = channel id).
CREATE TABLE channels (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('shared_pool', 'smtp', 'gmail')),
    owner_user_id TEXT,
    owner_team_id TEXT,
    owner_tenant BOOLEAN NOT NULL DEFAULT FALSE,
    scope TEXT NOT NULL CHECK (scope IN ('mailbox', 'domain')),
    from_address TEXT,
    settings TEXT NOT NULL,
    provider TEXT,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'needs_reauth', 'failing', 'disabled')),
    status_cause TEXT,
    credential_updated_at BIGINT,
    last_verified_at BIGINT,
    last_used_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, owner_user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, owner_team_id) REFERENCES teams (tenant_id, id) ON DELETE CASCADE,
    CHECK ((CASE WHEN owner_user_id IS NULL THEN 0 ELSE 1 END)
         + (CASE WHEN owner_team_id IS NULL THEN 0 ELSE 1 END)
         + (CASE WHEN owner_tenant THEN 1 ELSE 0 END) = 1),
    CHECK (scope <> 'mailbox' OR (owner_user_id IS NOT NULL AND from_address IS NOT NULL))
);
CREATE INDEX channels_tenant ON channels (tenant_id, created_at);
CREATE INDEX channels_mailbox ON channels (tenant_id, from_address);

-- The From domains of domain channels, as rows so the router finds them by domain.
CREATE TABLE channel_domains (
    channel_id TEXT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL,
    domain TEXT NOT NULL,
    PRIMARY KEY (channel_id, domain)
);
CREATE INDEX channel_domains_lookup ON channel_domains (tenant_id, domain);
