-- DNS health of verified domains (SPF, DKIM, DMARC, MX): the last run as JSON
-- ({checked_at, checks: [{check, status, message, detail}]}), when the next run is due, and the
-- DKIM selectors an admin named for the domain (a JSON list of strings).
ALTER TABLE domain_claims ADD COLUMN health TEXT;
ALTER TABLE domain_claims ADD COLUMN health_next_at BIGINT;
ALTER TABLE domain_claims ADD COLUMN dkim_selectors TEXT;
CREATE INDEX domain_claims_health_due ON domain_claims (health_next_at);
