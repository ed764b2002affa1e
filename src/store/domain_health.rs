//! The DNS health of verified domains: the last run of the checks on each claim, the hourly
//! schedule of re-runs, the DKIM selectors an admin names, and the `domain.dns_error` event
//! when a check that was `ok` fails. Every query takes the tenant; the scheduler alone lists
//! due claims across tenants.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::json;

use super::domains::{self, DomainClaim, DueClaim};
use super::notifications::{self, Event};
use super::schema::domain_claims;
use super::{DbConnection, StoreError, audit, write_transaction};
use crate::domain::dns_checks::DomainHealth;
use crate::domain::{AuditActor, ClaimState, DomainClaimId, EventType, TenantId};

/// Stores a run of the checks and schedules the next one. A verified domain whose check
/// was `ok` and now fails emits `domain.dns_error` with every check, in the same
/// transaction (once per change: the next run compares with this one).
pub fn record(
    conn: &mut DbConnection,
    tenant: TenantId,
    id: DomainClaimId,
    health: &DomainHealth,
    next_at: DateTime<Utc>,
) -> Result<DomainClaim, StoreError> {
    write_transaction(conn, |conn| {
        let before = domains::get(conn, tenant, id)?;
        let stored = serde_json::to_string(health).map_err(StoreError::corrupt)?;
        diesel::update(
            domain_claims::table
                .filter(domain_claims::tenant_id.eq(tenant.to_string()))
                .filter(domain_claims::id.eq(id.to_string())),
        )
        .set((
            domain_claims::health.eq(stored),
            domain_claims::health_next_at.eq(next_at.timestamp_micros()),
        ))
        .execute(conn)?;
        if before.state == ClaimState::Verified && health.newly_failing(before.health.as_ref()) {
            notifications::emit(
                conn,
                &Event {
                    tenant,
                    kind: EventType::DomainDnsError,
                    channel: None,
                    data: json!({
                        "domain": {
                            "id": before.id,
                            "domain": before.domain.as_str(),
                            "state": before.state.as_str(),
                        },
                        "checked_at": health.checked_at,
                        "checks": health.checks,
                    }),
                },
            )?;
        }
        domains::get(conn, tenant, id)
    })
}

/// Takes up to `limit` verified claims whose health run is due, pushing each one's next run
/// `lease` ahead so that another process does not take it too.
pub fn claim_due(
    conn: &mut DbConnection,
    lease: std::time::Duration,
    limit: i64,
) -> Result<Vec<DueClaim>, StoreError> {
    let (now, until) = domains::lease_from_now(lease);
    let due: Vec<(String, String, Option<i64>)> = domain_claims::table
        .filter(domain_claims::state.eq(ClaimState::Verified.as_str()))
        .filter(
            domain_claims::health_next_at
                .le(now)
                .or(domain_claims::health_next_at.is_null()),
        )
        .order(domain_claims::health_next_at)
        .select((
            domain_claims::tenant_id,
            domain_claims::id,
            domain_claims::health_next_at,
        ))
        .limit(limit)
        .load(conn)?;
    let mut taken = Vec::new();
    for (tenant, id, was) in due {
        let row = domain_claims::table.filter(domain_claims::id.eq(&id));
        let won = match was {
            Some(was) => diesel::update(row.filter(domain_claims::health_next_at.eq(was)))
                .set(domain_claims::health_next_at.eq(until))
                .execute(conn)?,
            None => diesel::update(row.filter(domain_claims::health_next_at.is_null()))
                .set(domain_claims::health_next_at.eq(until))
                .execute(conn)?,
        };
        if won == 1 {
            taken.push(DueClaim::parse(&tenant, &id)?);
        }
    }
    Ok(taken)
}

/// Replaces the DKIM selectors an admin named for the domain.
pub fn set_dkim_selectors(
    conn: &mut DbConnection,
    tenant: TenantId,
    id: DomainClaimId,
    selectors: &[String],
    actor: AuditActor,
) -> Result<DomainClaim, StoreError> {
    write_transaction(conn, |conn| {
        let before = domains::get(conn, tenant, id)?;
        let stored = serde_json::to_string(selectors).map_err(StoreError::corrupt)?;
        diesel::update(domain_claims::table.filter(domain_claims::id.eq(id.to_string())))
            .set(domain_claims::dkim_selectors.eq(stored))
            .execute(conn)?;
        audit::record_about(
            conn,
            tenant,
            &id,
            actor,
            "domain.updated",
            json!({
                "domain": before.domain.as_str(),
                "dkim_selectors": {"from": before.dkim_selectors, "to": selectors},
            }),
        )?;
        domains::get(conn, tenant, id)
    })
}
