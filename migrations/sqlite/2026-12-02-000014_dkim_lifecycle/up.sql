-- DKIM key lifecycle (issue 16): a new key is `pending` until DNS shows its record; only then
-- does it become `active` and sign (the key it replaces becomes `retiring`). At most one
-- pending key per tenant and domain, as there is at most one active key.
-- `activated_at`: when the key started signing (keys active before this migration: when
-- they were made, which is when they started signing then).
-- SQLite cannot alter a CHECK constraint: the table is rebuilt. Nothing references
-- dkim_keys by foreign key (the sealed private key lives in `secrets`, owner_id = key id).
CREATE TABLE dkim_keys_new (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    domain TEXT NOT NULL,
    selector TEXT NOT NULL,
    algorithm TEXT NOT NULL CHECK (algorithm IN ('rsa-sha256')),
    -- SubjectPublicKeyInfo DER: the `p=` of the published record.
    public_key BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'active', 'retiring', 'retired')),
    created_at BIGINT NOT NULL,
    retiring_since BIGINT,
    retired_at BIGINT,
    activated_at BIGINT,
    UNIQUE (domain, selector),
    CHECK (state IN ('pending', 'active') OR retiring_since IS NOT NULL),
    CHECK (state = 'pending' OR activated_at IS NOT NULL)
);
INSERT INTO dkim_keys_new (id, tenant_id, domain, selector, algorithm, public_key, state,
                           created_at, retiring_since, retired_at, activated_at)
    SELECT id, tenant_id, domain, selector, algorithm, public_key, state,
           created_at, retiring_since, retired_at, created_at
    FROM dkim_keys;
DROP TABLE dkim_keys;
ALTER TABLE dkim_keys_new RENAME TO dkim_keys;
CREATE UNIQUE INDEX dkim_keys_one_active ON dkim_keys (tenant_id, domain) WHERE state = 'active';
CREATE UNIQUE INDEX dkim_keys_one_pending ON dkim_keys (tenant_id, domain) WHERE state = 'pending';
CREATE INDEX dkim_keys_tenant_domain ON dkim_keys (tenant_id, domain, created_at);
CREATE INDEX dkim_keys_retiring ON dkim_keys (state, retiring_since);
