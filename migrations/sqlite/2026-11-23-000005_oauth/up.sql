-- OAuth connections (Gmail). The state of an authorization in progress: random, single use,
-- short-lived, bound to who started it. Only its SHA-256 is stored (the state travels in
-- URLs); the PKCE verifier is a sealed secret (secrets, owner_id = this row's id).
CREATE TABLE oauth_states (
    id TEXT PRIMARY KEY NOT NULL,
    state_hash BLOB NOT NULL UNIQUE,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    channel_id TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);

-- The tokens of a connected channel. The refresh and access tokens are sealed secrets
-- (owner_id = channel id, fields refresh_token and access_token); this row says when the
-- access token expires, counts refreshes (version), and holds the refresh lease that lets
-- exactly one worker of any process refresh at a time.
CREATE TABLE oauth_tokens (
    channel_id TEXT PRIMARY KEY NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    subject TEXT NOT NULL,
    scopes TEXT NOT NULL,
    access_expires_at BIGINT,
    version BIGINT NOT NULL DEFAULT 0,
    refresh_lease_owner TEXT,
    refresh_lease_until BIGINT,
    updated_at BIGINT NOT NULL
);
