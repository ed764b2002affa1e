-- Pending keys never signed: they go, with their sealed private halves.
DELETE FROM secrets WHERE field = 'dkim_private_key'
    AND owner_id IN (SELECT id FROM dkim_keys WHERE state = 'pending');
DELETE FROM dkim_keys WHERE state = 'pending';
CREATE TABLE dkim_keys_old (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    domain TEXT NOT NULL,
    selector TEXT NOT NULL,
    algorithm TEXT NOT NULL CHECK (algorithm IN ('rsa-sha256')),
    public_key BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('active', 'retiring', 'retired')),
    created_at BIGINT NOT NULL,
    retiring_since BIGINT,
    retired_at BIGINT,
    UNIQUE (domain, selector),
    CHECK (state = 'active' OR retiring_since IS NOT NULL)
);
INSERT INTO dkim_keys_old (id, tenant_id, domain, selector, algorithm, public_key, state,
                           created_at, retiring_since, retired_at)
    SELECT id, tenant_id, domain, selector, algorithm, public_key, state,
           created_at, retiring_since, retired_at
    FROM dkim_keys;
DROP TABLE dkim_keys;
ALTER TABLE dkim_keys_old RENAME TO dkim_keys;
CREATE UNIQUE INDEX dkim_keys_one_active ON dkim_keys (tenant_id, domain) WHERE state = 'active';
CREATE INDEX dkim_keys_tenant_domain ON dkim_keys (tenant_id, domain, created_at);
CREATE INDEX dkim_keys_retiring ON dkim_keys (state, retiring_since);
