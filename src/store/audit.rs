//! The audit trail: append-only (nothing here updates or deletes an event).

use diesel::prelude::*;

use super::schema::audit_events;
use super::time::now_micros;
use super::{DbConnection, StoreError};
use crate::domain::AuditEvent;

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
