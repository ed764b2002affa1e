ALTER TABLE tenants DROP COLUMN unsubscribe_by_default;
DROP TABLE unsubscribe_tokens;
DROP TABLE suppressions;
