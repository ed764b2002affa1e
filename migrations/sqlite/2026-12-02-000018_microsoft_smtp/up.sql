-- A Microsoft channel may send over SMTP with XOAUTH2 instead of Graph. Microsoft issues a
-- token for one resource per request (Graph, or outlook.office.com for SMTP), so the stored
-- access token says which one it is for: NULL is the provider's API (Graph, Gmail), `smtp`
-- is Exchange Online's SMTP submission. The refresh token is the same grant for both.
ALTER TABLE oauth_tokens ADD COLUMN access_resource TEXT;
