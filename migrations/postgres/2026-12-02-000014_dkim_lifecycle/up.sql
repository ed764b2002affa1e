-- DKIM key lifecycle (issue 16): a new key is `pending` until DNS shows its record; only then
-- does it become `active` and sign (the key it replaces becomes `retiring`). At most one
-- pending key per tenant and domain, as there is at most one active key.
-- `activated_at`: when the key started signing (keys active before this migration: when
-- they were made, which is when they started signing then).
ALTER TABLE dkim_keys ADD COLUMN activated_at BIGINT;
UPDATE dkim_keys SET activated_at = created_at WHERE state IN ('active', 'retiring', 'retired');
ALTER TABLE dkim_keys DROP CONSTRAINT dkim_keys_state_check;
ALTER TABLE dkim_keys DROP CONSTRAINT dkim_keys_check;
ALTER TABLE dkim_keys ADD CONSTRAINT dkim_keys_state_check
    CHECK (state IN ('pending', 'active', 'retiring', 'retired'));
ALTER TABLE dkim_keys ADD CONSTRAINT dkim_keys_check
    CHECK (state IN ('pending', 'active') OR retiring_since IS NOT NULL);
ALTER TABLE dkim_keys ADD CONSTRAINT dkim_keys_activated
    CHECK (state = 'pending' OR activated_at IS NOT NULL);
CREATE UNIQUE INDEX dkim_keys_one_pending ON dkim_keys (tenant_id, domain) WHERE state = 'pending';
