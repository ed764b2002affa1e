ALTER TABLE oauth_tokens DROP COLUMN access_resource;
