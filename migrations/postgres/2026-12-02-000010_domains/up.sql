-- A tenant's claims on sending domains. Several tenants may claim one domain, each with its
-- own token; a claim counts only once its TXT record was found (state 'verified').
CREATE TABLE domain_claims (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    domain TEXT NOT NULL,
    token TEXT NOT NULL,
    -- Fixed at the claim, so that the operator changing where proofs live breaks none.
    record_name TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'verified', 'lapsed', 'failed')),
    created_at BIGINT NOT NULL,
    verified_at BIGINT,
    lapsed_at BIGINT,
    last_checked_at BIGINT,
    -- NULL: not scheduled (a failed claim waits for a check on demand).
    next_check_at BIGINT,
    misses INTEGER NOT NULL DEFAULT 0,
    temp_failures INTEGER NOT NULL DEFAULT 0,
    -- The last proof check as JSON: {at, status, code, message}.
    last_check TEXT,
    UNIQUE (tenant_id, domain)
);
CREATE INDEX domain_claims_due ON domain_claims (next_check_at);

-- The domains tenants listed before proof existed become pending claims, checked at once.
-- gen_random_uuid() draws from a strong random source (PostgreSQL 13 and later).
INSERT INTO domain_claims (id, tenant_id, domain, token, record_name, state, created_at, next_check_at)
SELECT gen_random_uuid()::text,
       tenant_id,
       domain,
       substr(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 1, 40),
       '_switchboard.' || domain,
       'pending',
       (extract(epoch FROM now()) * 1000000)::bigint,
       (extract(epoch FROM now()) * 1000000)::bigint
FROM tenant_domains;

DROP TABLE tenant_domains;
