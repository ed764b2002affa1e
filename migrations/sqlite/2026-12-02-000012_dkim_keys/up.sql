-- DKIM keys of a tenant's sending domains (issue 16). One `active` key per (tenant, domain)
-- signs; a rotated key is `retiring` (still published, signs nothing) for a week, then
-- `retired`. Keys are per tenant: two tenants proving the same domain each have their own,
-- under selectors that never collide (UNIQUE (domain, selector)).
-- The private key is not here: like every secret it is sealed in `secrets` (owner_id = this
-- row's id, field `dkim_private_key`), so rotating a tenant's data key re-seals it, rotating
-- the master key re-wraps it, and deleting the tenant shreds it, with no code of its own.
-- It is deleted as soon as the key stops signing (rotation).
CREATE TABLE dkim_keys (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    domain TEXT NOT NULL,
    selector TEXT NOT NULL,
    algorithm TEXT NOT NULL CHECK (algorithm IN ('rsa-sha256')),
    -- SubjectPublicKeyInfo DER: the `p=` of the published record.
    public_key BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('active', 'retiring', 'retired')),
    created_at BIGINT NOT NULL,
    retiring_since BIGINT,
    retired_at BIGINT,
    UNIQUE (domain, selector),
    CHECK (state = 'active' OR retiring_since IS NOT NULL)
);
-- At most one signing key per tenant and domain, even when two processes create the first
-- one at the same moment.
CREATE UNIQUE INDEX dkim_keys_one_active ON dkim_keys (tenant_id, domain) WHERE state = 'active';
CREATE INDEX dkim_keys_tenant_domain ON dkim_keys (tenant_id, domain, created_at);
-- The housekeeping pass that retires keys finds them by this.
CREATE INDEX dkim_keys_retiring ON dkim_keys (state, retiring_since);
