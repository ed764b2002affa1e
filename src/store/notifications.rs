//! The durable queue of notifications. An event is written in the same transaction as the
//! change it reports (a channel going `needs_reauth`, a credential rotated), as one row per
//! recipient: each subscribed webhook, and for channel incidents the people who own the
//! channel. Workers claim due rows with a lease and record each attempt; the rows are the
//! delivery log.

use chrono::Utc;
use diesel::prelude::*;
use serde_json::json;

use super::connection::each_backend;
use super::schema::{notification_marks, notifications, users};
use super::time::{from_micros, now_micros};
use super::{DbConnection, StoreError, channels as channel_store};
use crate::domain::{ChannelId, ChannelOwner, EventType, SendChannel, TenantId};

/// Kinds of notification rows.
pub const WEBHOOK: &str = "webhook";
pub const EMAIL: &str = "email";

/// Statuses of notification rows.
pub const PENDING: &str = "pending";
pub const DELIVERED: &str = "delivered";
pub const FAILED: &str = "failed";

/// Something to tell a tenant about.
#[derive(Debug, Clone)]
pub struct Event {
    pub tenant: TenantId,
    pub kind: EventType,
    /// The channel it is about, when it is about one: its summary goes into the payload and
    /// its owners receive the email of an incident.
    pub channel: Option<ChannelId>,
    /// Facts for receivers (never a secret).
    pub data: serde_json::Value,
}

/// What a channel looks like in an event: enough to find it and act, nothing secret.
pub fn channel_summary(channel: &SendChannel) -> serde_json::Value {
    json!({
        "id": channel.id,
        "name": channel.spec.name.as_str(),
        "kind": channel.spec.kind.as_str(),
        "scope": channel.spec.scope.as_str(),
        "provider": channel.spec.provider,
        "from_address": channel.spec.from_address.as_ref().map(|a| a.to_string()),
        "owner": channel_store::owner_json(channel.spec.owner),
        "status": channel.status.as_str(),
        "status_cause": channel.status_cause,
    })
}

/// Queues an event for every subscribed webhook and, for a channel incident, an email to the
/// channel's owners. Returns the event id. Runs inside the caller's transaction, so the event
/// exists exactly when the change it reports does.
pub fn emit(conn: &mut DbConnection, event: &Event) -> Result<String, StoreError> {
    let event_id = format!("evt_{}", uuid::Uuid::new_v4().simple());
    let now = now_micros();
    let mut data = event.data.clone();
    let channel = match event.channel {
        Some(id) => match channel_store::get(conn, event.tenant, id) {
            Ok(channel) => Some(channel),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e),
        },
        None => None,
    };
    if let (Some(channel), Some(object)) = (&channel, data.as_object_mut()) {
        object.insert("channel".into(), channel_summary(channel));
    }
    let payload = json!({
        "id": event_id,
        "type": event.kind.as_str(),
        "created_at": from_micros(now).unwrap_or_else(|_| Utc::now()),
        "tenant_id": event.tenant,
        "data": data,
    })
    .to_string();
    let mut rows = Vec::new();
    for webhook in super::webhooks::subscribers(conn, event.tenant, event.kind)? {
        rows.push((WEBHOOK, Some(webhook.to_string()), None));
    }
    if event.kind.emails_owner()
        && let Some(channel) = &channel
    {
        for address in owner_addresses(conn, event.tenant, channel.spec.owner)? {
            rows.push((EMAIL, None, Some(address)));
        }
    }
    if event.kind.emails_admins() {
        for address in owner_addresses(conn, event.tenant, ChannelOwner::Tenant)? {
            // An admin who owns the channel hears once.
            if !rows.iter().any(|(_, _, r)| r.as_ref() == Some(&address)) {
                rows.push((EMAIL, None, Some(address)));
            }
        }
    }
    for (kind, webhook, recipient) in rows {
        diesel::insert_into(notifications::table)
            .values((
                notifications::id.eq(uuid::Uuid::new_v4().to_string()),
                notifications::tenant_id.eq(event.tenant.to_string()),
                notifications::event_id.eq(&event_id),
                notifications::event_type.eq(event.kind.as_str()),
                notifications::kind.eq(kind),
                notifications::webhook_id.eq(webhook),
                notifications::recipient.eq(recipient),
                notifications::payload.eq(&payload),
                notifications::status.eq(PENDING),
                notifications::next_attempt_at.eq(now),
                notifications::created_at.eq(now),
                notifications::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(event_id)
}

/// Emits the event unless one with the same mark was emitted before (`quota.near_limit`
/// once per channel, limit and period). Returns whether it was emitted.
pub fn emit_once(conn: &mut DbConnection, mark: &str, event: &Event) -> Result<bool, StoreError> {
    super::write_transaction(conn, |conn| {
        let inserted = each_backend!(conn, c => diesel::insert_into(notification_marks::table)
            .values((
                notification_marks::tenant_id.eq(event.tenant.to_string()),
                notification_marks::mark.eq(mark),
                notification_marks::created_at.eq(now_micros()),
            ))
            .on_conflict((notification_marks::tenant_id, notification_marks::mark))
            .do_nothing()
            .execute(c))?;
        if inserted == 0 {
            return Ok(false);
        }
        emit(conn, event)?;
        Ok(true)
    })
}

/// Who hears about a channel's trouble: the rep who owns a mailbox channel; the team's admins
/// for a team channel (the tenant's admins when the team has none); the tenant's admins for a
/// tenant channel. Disabled users hear nothing.
fn owner_addresses(
    conn: &mut DbConnection,
    tenant: TenantId,
    owner: ChannelOwner,
) -> Result<Vec<String>, StoreError> {
    let active = || {
        users::table
            .filter(users::tenant_id.eq(tenant.to_string()))
            .filter(users::disabled.eq(false))
    };
    let admins = || {
        active()
            .filter(users::role.eq("admin"))
            .select(users::email)
    };
    let mut found: Vec<String> = match owner {
        ChannelOwner::User(user) => active()
            .filter(users::id.eq(user.to_string()))
            .select(users::email)
            .load(conn)?,
        ChannelOwner::Team(team) => {
            let team_admins: Vec<String> = admins()
                .filter(users::team_id.eq(team.to_string()))
                .load(conn)?;
            if team_admins.is_empty() {
                admins().load(conn)?
            } else {
                team_admins
            }
        }
        ChannelOwner::Tenant => admins().load(conn)?,
        ChannelOwner::Platform => Vec::new(),
    };
    found.sort();
    found.dedup();
    Ok(found)
}

/// A claimed notification.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = notifications)]
pub struct Pending {
    pub id: String,
    pub tenant_id: String,
    pub event_id: String,
    pub event_type: String,
    pub kind: String,
    pub webhook_id: Option<String>,
    pub recipient: Option<String>,
    pub payload: String,
    pub attempts: i64,
}

/// Claims up to `limit` due notifications for `lease` microseconds. A row another worker
/// claimed in between is skipped: the guarded UPDATE decides.
pub fn claim(
    conn: &mut DbConnection,
    worker: &str,
    limit: i64,
    lease_micros: i64,
) -> Result<Vec<Pending>, StoreError> {
    let now = now_micros();
    let free = notifications::lease_until
        .is_null()
        .or(notifications::lease_until.lt(now));
    let due: Vec<String> = notifications::table
        .filter(notifications::status.eq(PENDING))
        .filter(notifications::next_attempt_at.le(now))
        .filter(free)
        .order(notifications::next_attempt_at)
        .limit(limit)
        .select(notifications::id)
        .load(conn)?;
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let until = now + lease_micros;
    diesel::update(
        notifications::table
            .filter(notifications::id.eq_any(&due))
            .filter(notifications::status.eq(PENDING))
            .filter(free),
    )
    .set((
        notifications::lease_owner.eq(worker),
        notifications::lease_until.eq(until),
        notifications::attempts.eq(notifications::attempts + 1),
    ))
    .execute(conn)?;
    Ok(notifications::table
        .filter(notifications::id.eq_any(&due))
        .filter(notifications::lease_owner.eq(worker))
        .filter(notifications::lease_until.eq(until))
        .select(Pending::as_select())
        .load(conn)?)
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Delivered {
        code: Option<i64>,
    },
    /// Try again at `at` (microseconds).
    Retry {
        at: i64,
        code: Option<i64>,
        error: String,
    },
    Failed {
        code: Option<i64>,
        error: String,
    },
}

/// Records an attempt, if the lease is still ours.
pub fn finish(
    conn: &mut DbConnection,
    worker: &str,
    id: &str,
    outcome: &Outcome,
) -> Result<bool, StoreError> {
    let now = now_micros();
    let target = notifications::table
        .filter(notifications::id.eq(id))
        .filter(notifications::lease_owner.eq(worker));
    let released = (
        notifications::lease_owner.eq(None::<String>),
        notifications::lease_until.eq(None::<i64>),
        notifications::updated_at.eq(now),
    );
    let updated = match outcome {
        Outcome::Delivered { code } => diesel::update(target)
            .set((
                notifications::status.eq(DELIVERED),
                notifications::last_status_code.eq(code),
                notifications::last_error.eq(None::<String>),
                notifications::delivered_at.eq(now),
                released,
            ))
            .execute(conn)?,
        Outcome::Retry { at, code, error } => diesel::update(target)
            .set((
                notifications::next_attempt_at.eq(at),
                notifications::last_status_code.eq(code),
                notifications::last_error.eq(error),
                released,
            ))
            .execute(conn)?,
        Outcome::Failed { code, error } => diesel::update(target)
            .set((
                notifications::status.eq(FAILED),
                notifications::last_status_code.eq(code),
                notifications::last_error.eq(error),
                released,
            ))
            .execute(conn)?,
    };
    Ok(updated == 1)
}

/// Forgets finished notifications and marks older than `before` (microseconds).
pub fn prune(conn: &mut DbConnection, before: i64) -> Result<usize, StoreError> {
    let rows = diesel::delete(
        notifications::table
            .filter(notifications::status.ne(PENDING))
            .filter(notifications::updated_at.lt(before)),
    )
    .execute(conn)?;
    let marks =
        diesel::delete(notification_marks::table.filter(notification_marks::created_at.lt(before)))
            .execute(conn)?;
    Ok(rows + marks)
}

/// Notifications by status across all tenants, for `/metrics`: a growing `pending` count
/// means receivers are down or the workers are off.
pub fn count_by_status(conn: &mut DbConnection) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(notifications::table
        .group_by(notifications::status)
        .select((notifications::status, diesel::dsl::count_star()))
        .load(conn)?)
}
