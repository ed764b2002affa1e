-- Each recipient's own outcome (issue 15): a JSON array of {address, status, code, reply},
-- written only when recipients part ways (one refused, one deferred); NULL means every
-- recipient shares the message's status. `failed_recipients` counts those refused for good,
-- so a `sent` message with some is shown (and filtered) as `partially_sent`.
ALTER TABLE messages ADD COLUMN recipients TEXT;
ALTER TABLE messages ADD COLUMN failed_recipients BIGINT NOT NULL DEFAULT 0;
