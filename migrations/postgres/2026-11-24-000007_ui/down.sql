ALTER TABLE oauth_states DROP COLUMN return_to;
DROP TABLE ui_sessions;
