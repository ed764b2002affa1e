-- Pending keys never signed: they go, with their sealed private halves.
DELETE FROM secrets WHERE field = 'dkim_private_key'
    AND owner_id IN (SELECT id FROM dkim_keys WHERE state = 'pending');
DELETE FROM dkim_keys WHERE state = 'pending';
DROP INDEX dkim_keys_one_pending;
ALTER TABLE dkim_keys DROP CONSTRAINT dkim_keys_activated;
ALTER TABLE dkim_keys DROP CONSTRAINT dkim_keys_check;
ALTER TABLE dkim_keys DROP CONSTRAINT dkim_keys_state_check;
ALTER TABLE dkim_keys ADD CONSTRAINT dkim_keys_state_check
    CHECK (state IN ('active', 'retiring', 'retired'));
ALTER TABLE dkim_keys ADD CONSTRAINT dkim_keys_check
    CHECK (state = 'active' OR retiring_since IS NOT NULL);
ALTER TABLE dkim_keys DROP COLUMN activated_at;
