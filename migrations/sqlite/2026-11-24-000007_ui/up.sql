-- Admin UI sessions. A session is opened by signing in with an API token and lives only as
-- long as that token: revoking the token (or disabling its user) ends the session on the
-- next request, because authentication joins through api_tokens and users. The cookie holds
-- a random secret; only its hash is stored.
CREATE TABLE ui_sessions (
    id TEXT PRIMARY KEY NOT NULL,
    session_hash BLOB NOT NULL UNIQUE,
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    token_id TEXT NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX ui_sessions_expiry ON ui_sessions (expires_at);

-- Where the browser goes after Google's consent: the admin UI's channel page for a
-- connection started there; none means the callback answers with its own page (API clients).
ALTER TABLE oauth_states ADD COLUMN return_to TEXT;
