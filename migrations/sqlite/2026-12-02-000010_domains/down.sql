CREATE TABLE tenant_domains (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    domain TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, domain)
);
INSERT INTO tenant_domains (tenant_id, domain, created_at)
SELECT tenant_id, domain, created_at FROM domain_claims;
DROP TABLE domain_claims;
