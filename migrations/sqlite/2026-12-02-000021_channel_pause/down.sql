-- A paused channel becomes disabled: it must not start sending by itself.
DROP TABLE tenant_bounce_pause;
CREATE TEMP TABLE saved_channel_domains AS SELECT * FROM channel_domains;
CREATE TEMP TABLE saved_oauth_tokens AS SELECT * FROM oauth_tokens;

CREATE TABLE channels_rebuilt (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('shared_pool', 'smtp', 'gmail', 'microsoft')),
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
    failure_count BIGINT NOT NULL DEFAULT 0,
    first_failure_at BIGINT,
    last_error TEXT,
    last_error_at BIGINT,
    status_changed_at BIGINT,
    next_check_at BIGINT,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, owner_user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, owner_team_id) REFERENCES teams (tenant_id, id) ON DELETE CASCADE,
    CHECK ((CASE WHEN owner_user_id IS NULL THEN 0 ELSE 1 END)
         + (CASE WHEN owner_team_id IS NULL THEN 0 ELSE 1 END)
         + (CASE WHEN owner_tenant THEN 1 ELSE 0 END) = 1),
    CHECK (scope <> 'mailbox' OR (owner_user_id IS NOT NULL AND from_address IS NOT NULL))
);
INSERT INTO channels_rebuilt (id, tenant_id, name, kind, owner_user_id, owner_team_id, owner_tenant, scope, from_address, settings, provider, status, status_cause, credential_updated_at, last_verified_at, last_used_at, created_at, updated_at, failure_count, first_failure_at, last_error, last_error_at, status_changed_at, next_check_at)
    SELECT id, tenant_id, name, kind, owner_user_id, owner_team_id, owner_tenant, scope, from_address, settings, provider, CASE WHEN status = 'paused' THEN 'disabled' ELSE status END, status_cause, credential_updated_at, last_verified_at, last_used_at, created_at, updated_at, failure_count, first_failure_at, last_error, last_error_at, status_changed_at, next_check_at FROM channels;
DROP TABLE channels;
ALTER TABLE channels_rebuilt RENAME TO channels;
CREATE INDEX channels_tenant ON channels (tenant_id, created_at);
CREATE INDEX channels_mailbox ON channels (tenant_id, from_address);

INSERT INTO channel_domains SELECT * FROM saved_channel_domains;
INSERT INTO oauth_tokens SELECT * FROM saved_oauth_tokens;
DROP TABLE saved_channel_domains;
DROP TABLE saved_oauth_tokens;

