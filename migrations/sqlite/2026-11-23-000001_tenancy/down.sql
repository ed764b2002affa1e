DROP TABLE operator_tokens;
DROP TABLE api_tokens;
DROP TABLE users;
DROP TABLE teams;
DROP TABLE tenant_domains;
DROP TABLE tenants;
