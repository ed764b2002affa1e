-- The sealed private keys live in secrets; they go with their keys.
DELETE FROM secrets WHERE field = 'dkim_private_key';
DROP TABLE dkim_keys;
