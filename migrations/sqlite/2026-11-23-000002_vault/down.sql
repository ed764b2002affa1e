DROP TABLE audit_events;
DROP TABLE secrets;
DROP TABLE tenant_keys;
