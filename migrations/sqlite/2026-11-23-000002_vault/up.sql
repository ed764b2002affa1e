-- The vault: per-tenant data keys (wrapped by a master key), sealed secrets, and the
-- append-only audit trail (key rotations are its first events).

-- Each tenant has one or more data key versions; the highest seals new secrets. The key is
-- stored wrapped by the master key `master_key_id`. Deleting the tenant deletes its keys,
-- which makes its sealed secrets unrecoverable (crypto-shredding).
-- WITHOUT ROWID (SQLite only): rows are stored in primary-key order, so a rotation walking
-- the key in batches touches neighbouring pages, not pages scattered over the file
-- (measured: 2-3x faster re-wrapping; see benches/vault.rs).
CREATE TABLE tenant_keys (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    version BIGINT NOT NULL,
    master_key_id TEXT NOT NULL,
    wrapped BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    rewrapped_at BIGINT,
    PRIMARY KEY (tenant_id, version)
) WITHOUT ROWID;
CREATE INDEX tenant_keys_master ON tenant_keys (master_key_id);

-- Every secret of a tenant (SMTP passwords, API keys, OAuth tokens) lives here, sealed with
-- the tenant's data key and bound to (tenant, owner, field): a value copied to another row
-- does not open.
CREATE TABLE secrets (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    owner_id TEXT NOT NULL,
    field TEXT NOT NULL,
    sealed BLOB NOT NULL,
    key_version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, owner_id, field)
);
CREATE INDEX secrets_key_version ON secrets (tenant_id, key_version);

-- No foreign key to tenants: the record of a deleted tenant's deletion outlives it. A NULL
-- tenant is a platform event (master key rotation).
CREATE TABLE audit_events (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX audit_events_tenant_at ON audit_events (tenant_id, at);
