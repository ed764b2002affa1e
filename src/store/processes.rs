//! The `processes` table: one heartbeat row per `serve` process that runs delivery, named by
//! the id it writes into `messages.lease_owner`. May import `domain`.
//!
//! A row that is stale (`heartbeat_at` older than the timeout) or marked `found_dead_at`
//! names a dead process; the claim in `delivery` takes its leased messages over at once.

use diesel::prelude::*;

use super::messages::MessageStatus;
use super::schema::{messages, processes};
use super::write_transaction;
use super::{DbConnection, StoreError};

/// Who a process is, as written at registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub id: String,
    pub hostname: String,
    pub pid: i64,
    pub pid_scope: Option<String>,
    pub started_at: i64,
}

/// A process row as another process sees it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = processes)]
pub struct ProcessRow {
    pub id: String,
    pub hostname: String,
    pub pid: i64,
    pub pid_scope: Option<String>,
    pub started_at: i64,
    pub heartbeat_at: i64,
    pub found_dead_at: Option<i64>,
}

/// Writes this process's row with a fresh heartbeat, or revives it when it is there already
/// (stale, or marked dead while the process was paused).
pub fn register(conn: &mut DbConnection, me: &Registration, now: i64) -> Result<(), StoreError> {
    write_transaction(conn, |conn| {
        let revived = diesel::update(processes::table.find(&me.id))
            .set((
                processes::heartbeat_at.eq(now),
                processes::found_dead_at.eq(None::<i64>),
            ))
            .execute(conn)?;
        if revived == 0 {
            diesel::insert_into(processes::table)
                .values((
                    processes::id.eq(&me.id),
                    processes::hostname.eq(&me.hostname),
                    processes::pid.eq(me.pid),
                    processes::pid_scope.eq(&me.pid_scope),
                    processes::started_at.eq(me.started_at),
                    processes::heartbeat_at.eq(now),
                ))
                .execute(conn)?;
        }
        Ok(())
    })
}

/// Renews the heartbeat. `false` when the row had lapsed: gone, marked dead, or older than
/// `stale_before`, so other processes may have taken this one's messages over; the caller
/// registers again.
pub fn beat(
    conn: &mut DbConnection,
    id: &str,
    now: i64,
    stale_before: i64,
) -> Result<bool, StoreError> {
    let updated = diesel::update(
        processes::table
            .find(id)
            .filter(processes::found_dead_at.is_null())
            .filter(processes::heartbeat_at.ge(stale_before)),
    )
    .set(processes::heartbeat_at.eq(now))
    .execute(conn)?;
    Ok(updated == 1)
}

/// Every process not yet found dead, this one included.
pub fn not_found_dead(conn: &mut DbConnection) -> Result<Vec<ProcessRow>, StoreError> {
    Ok(processes::table
        .filter(processes::found_dead_at.is_null())
        .order(processes::started_at)
        .select(ProcessRow::as_select())
        .load(conn)?)
}

/// Marks a process dead, unless it beat since it was read (`seen_heartbeat`) or another
/// process marked it first; `true` when this call marked it.
pub fn mark_dead(
    conn: &mut DbConnection,
    id: &str,
    seen_heartbeat: i64,
    now: i64,
) -> Result<bool, StoreError> {
    let updated = diesel::update(
        processes::table
            .find(id)
            .filter(processes::found_dead_at.is_null())
            .filter(processes::heartbeat_at.eq(seen_heartbeat)),
    )
    .set(processes::found_dead_at.eq(now))
    .execute(conn)?;
    Ok(updated == 1)
}

/// At a clean stop, after the process recorded its outcomes: removes its row, or, when it
/// still leases messages (a pass it could not route leaves them claimed), marks it dead so
/// that others take those over at once instead of when their lease expires.
pub fn leave(conn: &mut DbConnection, id: &str, now: i64) -> Result<(), StoreError> {
    write_transaction(conn, |conn| {
        let leased: i64 = messages::table
            .filter(messages::status.eq(MessageStatus::Sending.as_str()))
            .filter(messages::lease_owner.eq(id))
            .count()
            .get_result(conn)?;
        if leased == 0 {
            diesel::delete(processes::table.find(id)).execute(conn)?;
        } else {
            diesel::update(processes::table.find(id))
                .set(processes::found_dead_at.eq(now))
                .execute(conn)?;
        }
        Ok(())
    })
}

/// Forgets processes found dead before `before` that no longer hold a leased message (a
/// row is what lets the claim take those messages over early, so it stays while they wait).
pub fn prune(conn: &mut DbConnection, before: i64) -> Result<usize, StoreError> {
    write_transaction(conn, |conn| {
        let gone: Vec<String> = processes::table
            .filter(processes::found_dead_at.lt(before))
            .select(processes::id)
            .load(conn)?;
        if gone.is_empty() {
            return Ok(0);
        }
        let holding: Vec<Option<String>> = messages::table
            .filter(messages::status.eq(MessageStatus::Sending.as_str()))
            .filter(messages::lease_owner.eq_any(&gone))
            .select(messages::lease_owner)
            .distinct()
            .load(conn)?;
        let forget: Vec<&String> = gone
            .iter()
            .filter(|id| !holding.iter().flatten().any(|h| h == *id))
            .collect();
        Ok(diesel::delete(processes::table.filter(processes::id.eq_any(forget))).execute(conn)?)
    })
}

/// Process rows as `alive` (fresh heartbeat, nobody found it dead) and `dead` (kept until
/// pruned), for the metrics.
pub fn count_by_state(
    conn: &mut DbConnection,
    stale_before: i64,
) -> Result<Vec<(String, i64)>, StoreError> {
    let alive: i64 = processes::table
        .filter(processes::found_dead_at.is_null())
        .filter(processes::heartbeat_at.ge(stale_before))
        .count()
        .get_result(conn)?;
    let all: i64 = processes::table.count().get_result(conn)?;
    Ok(vec![("alive".into(), alive), ("dead".into(), all - alive)])
}
