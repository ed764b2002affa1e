//! The audit trail: append-only (nothing here updates or deletes an event).

use diesel::prelude::*;

use super::schema::audit_events;
use super::time::now_micros;
use super::{DbConnection, StoreError};
use crate::domain::{AuditActor, AuditEvent, TenantId};

pub fn record(conn: &mut DbConnection, event: &AuditEvent) -> Result<(), StoreError> {
    diesel::insert_into(audit_events::table)
        .values((
            audit_events::id.eq(uuid::Uuid::new_v4().to_string()),
            audit_events::tenant_id.eq(event.tenant.map(|t| t.to_string())),
            audit_events::at.eq(now_micros()),
            audit_events::actor.eq(event.actor.to_string()),
            audit_events::action.eq(event.action),
            audit_events::target.eq(event.target.as_deref()),
            audit_events::detail.eq(event.detail.to_string()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Records an event about one thing of a tenant (a channel, a webhook), named by its id.
pub fn record_about(
    conn: &mut DbConnection,
    tenant: TenantId,
    target: &dyn std::fmt::Display,
    actor: AuditActor,
    action: &'static str,
    detail: serde_json::Value,
) -> Result<(), StoreError> {
    record(
        conn,
        &AuditEvent {
            tenant: Some(tenant),
            actor,
            action,
            target: Some(target.to_string()),
            detail,
        },
    )
}

/// A stored event, newest last.
#[derive(Debug, Clone, Queryable)]
pub struct AuditRecord {
    pub tenant_id: Option<String>,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: String,
}

/// Platform events (tenant `None`) or one tenant's events, oldest first.
pub fn list(
    conn: &mut DbConnection,
    tenant: Option<crate::domain::TenantId>,
) -> Result<Vec<AuditRecord>, StoreError> {
    let query = audit_events::table
        .select((
            audit_events::tenant_id,
            audit_events::at,
            audit_events::actor,
            audit_events::action,
            audit_events::target,
            audit_events::detail,
        ))
        .order((audit_events::at, audit_events::id))
        .into_boxed();
    let query = match tenant {
        Some(t) => query.filter(audit_events::tenant_id.eq(t.to_string())),
        None => query.filter(audit_events::tenant_id.is_null()),
    };
    Ok(query.load(conn)?)
}

/// Which of a tenant's events to read.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only events at or after this time (microseconds).
    pub since: Option<i64>,
    /// Only events before this time (microseconds).
    pub until: Option<i64>,
    /// Only events about this target (a channel id, a user id, …).
    pub target: Option<String>,
    /// Only this action (`credential.rotated`) or, ending in `.`, this family (`channel.`).
    pub action: Option<String>,
    pub limit: i64,
}

/// One tenant's events matching `filter`, oldest first.
pub fn search(
    conn: &mut DbConnection,
    tenant: crate::domain::TenantId,
    filter: &AuditFilter,
) -> Result<Vec<AuditRecord>, StoreError> {
    let mut query = audit_events::table
        .select((
            audit_events::tenant_id,
            audit_events::at,
            audit_events::actor,
            audit_events::action,
            audit_events::target,
            audit_events::detail,
        ))
        .filter(audit_events::tenant_id.eq(tenant.to_string()))
        .order((audit_events::at, audit_events::id))
        .limit(filter.limit)
        .into_boxed();
    if let Some(since) = filter.since {
        query = query.filter(audit_events::at.ge(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(audit_events::at.lt(until));
    }
    if let Some(target) = &filter.target {
        query = query.filter(audit_events::target.eq(target.clone()));
    }
    match filter.action.as_deref() {
        Some(family) if family.ends_with('.') => {
            query = query.filter(audit_events::action.like(format!("{family}%")));
        }
        Some(action) => query = query.filter(audit_events::action.eq(action.to_owned())),
        None => {}
    }
    Ok(query.load(conn)?)
}
