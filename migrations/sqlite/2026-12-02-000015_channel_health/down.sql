DROP TABLE channel_domain_health;
