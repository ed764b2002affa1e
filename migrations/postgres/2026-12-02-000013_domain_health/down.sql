DROP INDEX domain_claims_health_due;
ALTER TABLE domain_claims DROP COLUMN dkim_selectors;
ALTER TABLE domain_claims DROP COLUMN health_next_at;
ALTER TABLE domain_claims DROP COLUMN health;
