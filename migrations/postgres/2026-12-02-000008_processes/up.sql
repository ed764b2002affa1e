-- The `serve` processes that run delivery, one row each, named by the id they write into
-- messages.lease_owner. A process renews heartbeat_at every few seconds; one whose heartbeat
-- is stale, or whose pid is gone on the same machine (same pid_scope), is dead, and its
-- leased messages are taken over at once instead of when their lease expires. A lease_owner
-- with no row here (a process of an older version) keeps its leases until they expire.
CREATE TABLE processes (
    id TEXT PRIMARY KEY NOT NULL,
    hostname TEXT NOT NULL,
    pid BIGINT NOT NULL,
    -- Where `pid` names a process: boot id, pid namespace and uid on Linux; NULL when unknown,
    -- and then only the heartbeat tells.
    pid_scope TEXT,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    -- When another process found it dead; the row is pruned a while later.
    found_dead_at BIGINT
);
