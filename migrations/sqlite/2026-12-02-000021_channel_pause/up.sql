-- Channels may be `paused` (issue 18): by the bounce rule, by a provider's sending block, or
-- by an admin. `paused_until` ends a provider's block with a known end (Exchange's rolling
-- 24 h limit); `bounce_window_from` starts the bounce window afresh after a resume, so a
-- resumed channel is not paused again at once by the bounces that paused it; `pause_detail`
-- keeps the figures (JSON) that the channel page and the events show.
--
-- SQLite cannot alter a CHECK constraint, so `channels` is rebuilt as 000016 did, setting
-- aside the rows that reference it (the drop cascades to them inside the harness's
-- transaction) and putting them back.
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
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'needs_reauth', 'failing', 'disabled', 'paused')),
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
    paused_until BIGINT,
    bounce_window_from BIGINT,
    pause_detail TEXT,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, owner_user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, owner_team_id) REFERENCES teams (tenant_id, id) ON DELETE CASCADE,
    CHECK ((CASE WHEN owner_user_id IS NULL THEN 0 ELSE 1 END)
         + (CASE WHEN owner_team_id IS NULL THEN 0 ELSE 1 END)
         + (CASE WHEN owner_tenant THEN 1 ELSE 0 END) = 1),
    CHECK (scope <> 'mailbox' OR (owner_user_id IS NOT NULL AND from_address IS NOT NULL))
);
INSERT INTO channels_rebuilt (id, tenant_id, name, kind, owner_user_id, owner_team_id, owner_tenant, scope, from_address, settings, provider, status, status_cause, credential_updated_at, last_verified_at, last_used_at, created_at, updated_at, failure_count, first_failure_at, last_error, last_error_at, status_changed_at, next_check_at)
    SELECT id, tenant_id, name, kind, owner_user_id, owner_team_id, owner_tenant, scope, from_address, settings, provider, status, status_cause, credential_updated_at, last_verified_at, last_used_at, created_at, updated_at, failure_count, first_failure_at, last_error, last_error_at, status_changed_at, next_check_at FROM channels;
DROP TABLE channels;
ALTER TABLE channels_rebuilt RENAME TO channels;
CREATE INDEX channels_tenant ON channels (tenant_id, created_at);
CREATE INDEX channels_mailbox ON channels (tenant_id, from_address);

INSERT INTO channel_domains SELECT * FROM saved_channel_domains;
INSERT INTO oauth_tokens SELECT * FROM saved_oauth_tokens;
DROP TABLE saved_channel_domains;
DROP TABLE saved_oauth_tokens;


-- A tenant's bounce auto-pause rule; no row means the defaults (3 % over 50 sends in 7 days).
CREATE TABLE tenant_bounce_pause (
    tenant_id TEXT PRIMARY KEY NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    threshold_basis_points BIGINT NOT NULL,
    min_sends BIGINT NOT NULL,
    window_days BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
