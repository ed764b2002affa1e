ALTER TABLE tenants DROP COLUMN sending_defaults;
DROP TABLE channel_pacing;
