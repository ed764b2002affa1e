DROP TABLE channel_usage;
DROP TABLE message_events;
DROP TABLE messages;
ALTER TABLE teams DROP COLUMN sending_enabled;
