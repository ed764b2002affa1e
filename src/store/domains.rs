//! A tenant's claims on sending domains, their proof checks and what a change of state sets
//! off: released mail when a domain is verified, events and audit when it lapses. Every
//! query takes the tenant; the scheduler alone lists due claims across tenants.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::{Value, json};

use super::messages::{self, Release};
use super::notifications::{self, Event};
use super::schema::{channel_domains, channels, domain_claims};
use super::time::{from_micros, now_micros};
use super::{DbConnection, StoreError, audit, write_transaction};
use crate::domain::claims::{
    ClaimChange, ClaimProgress, ClaimState, ClaimToken, ProofCheck, ProofRecord, Transition,
};
use crate::domain::dns_checks::DomainHealth;
use crate::domain::{AuditActor, Domain, DomainClaimId, EventType, TenantId};

/// Most claims one tenant may hold.
pub const MAX_CLAIMS: i64 = 500;

/// A claim as stored.
#[derive(Debug, Clone)]
pub struct DomainClaim {
    pub id: DomainClaimId,
    pub tenant: TenantId,
    pub domain: Domain,
    pub token: ClaimToken,
    pub record_name: String,
    pub state: ClaimState,
    pub created_at: DateTime<Utc>,
    pub verified_at: Option<DateTime<Utc>>,
    pub lapsed_at: Option<DateTime<Utc>>,
    pub last_checked_at: Option<DateTime<Utc>>,
    pub next_check_at: Option<DateTime<Utc>>,
    pub misses: u32,
    pub temp_failures: u32,
    /// The last proof check: `{at, status, code, message}`.
    pub last_check: Option<Value>,
    /// The DKIM records Switchboard signs with for this tenant and domain (active, and
    /// retiring after a rotation): to publish next to the proof.
    pub dkim: Vec<crate::domain::dkim::DkimRecord>,
    /// The last DNS health run (SPF, DKIM, DMARC, MX), kept while the claim is not verified
    /// but shown only while it is.
    pub health: Option<DomainHealth>,
    /// DKIM selectors an admin named for the domain (the relay's).
    pub dkim_selectors: Vec<String>,
}

impl DomainClaim {
    /// The TXT record that proves this claim.
    pub fn record(&self) -> ProofRecord {
        ProofRecord::new(self.record_name.clone(), &self.token)
    }

    pub fn progress(&self) -> ClaimProgress {
        ClaimProgress {
            state: self.state,
            created_at: self.created_at,
            misses: self.misses,
            temp_failures: self.temp_failures,
        }
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = domain_claims)]
struct ClaimRow {
    id: String,
    tenant_id: String,
    domain: String,
    token: String,
    record_name: String,
    state: String,
    created_at: i64,
    verified_at: Option<i64>,
    lapsed_at: Option<i64>,
    last_checked_at: Option<i64>,
    next_check_at: Option<i64>,
    misses: i32,
    temp_failures: i32,
    last_check: Option<String>,
    health: Option<String>,
    dkim_selectors: Option<String>,
}

/// A nullable JSON column, parsed.
fn json_column<T: serde::de::DeserializeOwned>(raw: Option<&str>) -> Result<Option<T>, StoreError> {
    raw.map(serde_json::from_str)
        .transpose()
        .map_err(StoreError::corrupt)
}

impl ClaimRow {
    fn into_claim(self) -> Result<DomainClaim, StoreError> {
        let time = |t: Option<i64>| t.map(from_micros).transpose();
        Ok(DomainClaim {
            id: self.id.parse().map_err(StoreError::corrupt)?,
            tenant: self.tenant_id.parse().map_err(StoreError::corrupt)?,
            domain: Domain::parse(&self.domain).map_err(StoreError::corrupt)?,
            token: ClaimToken::from_stored(self.token),
            record_name: self.record_name,
            state: self.state.parse().map_err(StoreError::corrupt)?,
            created_at: from_micros(self.created_at)?,
            verified_at: time(self.verified_at)?,
            lapsed_at: time(self.lapsed_at)?,
            last_checked_at: time(self.last_checked_at)?,
            next_check_at: time(self.next_check_at)?,
            misses: u32::try_from(self.misses).unwrap_or(0),
            temp_failures: u32::try_from(self.temp_failures).unwrap_or(0),
            last_check: json_column(self.last_check.as_deref())?,
            health: json_column(self.health.as_deref())?,
            dkim_selectors: json_column(self.dkim_selectors.as_deref())?.unwrap_or_default(),
            dkim: Vec::new(),
        })
    }

    /// The claim with the DKIM records its tenant publishes for the domain.
    fn into_claim_with_dkim(self, conn: &mut DbConnection) -> Result<DomainClaim, StoreError> {
        let mut claim = self.into_claim()?;
        claim.dkim = super::dkim_keys::published(conn, claim.tenant, &claim.domain)?;
        Ok(claim)
    }
}

/// Claims `domain` for the tenant: a pending claim with a fresh token, checked soon by the
/// scheduler. Claiming a domain the tenant already claimed is a conflict; another tenant's
/// claim on it is neither visible nor in the way.
pub fn claim(
    conn: &mut DbConnection,
    tenant: TenantId,
    domain: &Domain,
    record_name: String,
    first_check_at: DateTime<Utc>,
    actor: AuditActor,
) -> Result<DomainClaim, StoreError> {
    write_transaction(conn, |conn| {
        let exists = domain_claims::table
            .filter(domain_claims::tenant_id.eq(tenant.to_string()))
            .filter(domain_claims::domain.eq(domain.as_str()))
            .select(domain_claims::id)
            .first::<String>(conn)
            .optional()?;
        if let Some(id) = exists {
            return Err(StoreError::Conflict {
                code: "domain_already_claimed",
                detail: format!("this tenant already claimed {domain} (domain {id})"),
            });
        }
        let id = insert(conn, tenant, domain, record_name, first_check_at, actor)?;
        get(conn, tenant, id)
    })
}

fn insert(
    conn: &mut DbConnection,
    tenant: TenantId,
    domain: &Domain,
    record_name: String,
    first_check_at: DateTime<Utc>,
    actor: AuditActor,
) -> Result<DomainClaimId, StoreError> {
    let held: i64 = domain_claims::table
        .filter(domain_claims::tenant_id.eq(tenant.to_string()))
        .count()
        .get_result(conn)?;
    if held >= MAX_CLAIMS {
        return Err(StoreError::Conflict {
            code: "too_many_domains",
            detail: format!("a tenant may claim at most {MAX_CLAIMS} domains"),
        });
    }
    let id = DomainClaimId::generate();
    diesel::insert_into(domain_claims::table)
        .values((
            domain_claims::id.eq(id.to_string()),
            domain_claims::tenant_id.eq(tenant.to_string()),
            domain_claims::domain.eq(domain.as_str()),
            domain_claims::token.eq(ClaimToken::generate().as_str()),
            domain_claims::record_name.eq(&record_name),
            domain_claims::state.eq(ClaimState::Pending.as_str()),
            domain_claims::created_at.eq(now_micros()),
            domain_claims::next_check_at.eq(first_check_at.timestamp_micros()),
            domain_claims::misses.eq(0),
            domain_claims::temp_failures.eq(0),
        ))
        .execute(conn)?;
    audit::record_about(
        conn,
        tenant,
        &id,
        actor,
        "domain.claimed",
        json!({ "domain": domain.as_str(), "record_name": record_name }),
    )?;
    Ok(id)
}

/// Makes the tenant's claims exactly `wanted` (the `domains` list of `PATCH /v1/tenant`,
/// kept for clients written before claims existed): new domains are claimed, pending;
/// unlisted claims are dropped as by `delete`. Inside the caller's transaction.
pub fn sync(
    conn: &mut DbConnection,
    tenant: TenantId,
    wanted: &[Domain],
    record_name: impl Fn(&Domain) -> String,
    first_check_at: DateTime<Utc>,
    actor: AuditActor,
) -> Result<(), StoreError> {
    let current = list(conn, tenant)?;
    for claim in &current {
        if !wanted.contains(&claim.domain) {
            drop_claim(conn, claim, actor.clone())?;
        }
    }
    for domain in wanted {
        if !current.iter().any(|c| &c.domain == domain) {
            insert(
                conn,
                tenant,
                domain,
                record_name(domain),
                first_check_at,
                actor.clone(),
            )?;
        }
    }
    Ok(())
}

pub fn get(
    conn: &mut DbConnection,
    tenant: TenantId,
    id: DomainClaimId,
) -> Result<DomainClaim, StoreError> {
    domain_claims::table
        .filter(domain_claims::tenant_id.eq(tenant.to_string()))
        .filter(domain_claims::id.eq(id.to_string()))
        .select(ClaimRow::as_select())
        .first::<ClaimRow>(conn)?
        .into_claim_with_dkim(conn)
}

/// The tenant's claims, by domain name, without their DKIM records (`list_with_dkim`
/// adds them, a query per claim, for the pages that show them).
pub fn list(conn: &mut DbConnection, tenant: TenantId) -> Result<Vec<DomainClaim>, StoreError> {
    domain_claims::table
        .filter(domain_claims::tenant_id.eq(tenant.to_string()))
        .order(domain_claims::domain)
        .select(ClaimRow::as_select())
        .load::<ClaimRow>(conn)?
        .into_iter()
        .map(ClaimRow::into_claim)
        .collect()
}

/// The tenant's claims with the DKIM records to publish for each.
pub fn list_with_dkim(
    conn: &mut DbConnection,
    tenant: TenantId,
) -> Result<Vec<DomainClaim>, StoreError> {
    let mut claims = list(conn, tenant)?;
    for claim in &mut claims {
        claim.dkim = super::dkim_keys::published(conn, claim.tenant, &claim.domain)?;
    }
    Ok(claims)
}

/// Each claimed domain's state, for the router.
pub fn states(
    conn: &mut DbConnection,
    tenant: TenantId,
) -> Result<HashMap<Domain, ClaimState>, StoreError> {
    domain_claims::table
        .filter(domain_claims::tenant_id.eq(tenant.to_string()))
        .select((domain_claims::domain, domain_claims::state))
        .load::<(String, String)>(conn)?
        .into_iter()
        .map(|(domain, state)| {
            Ok((
                Domain::parse(&domain).map_err(StoreError::corrupt)?,
                state.parse().map_err(StoreError::corrupt)?,
            ))
        })
        .collect()
}

/// The tenant's channels that list `domain`, for refusing to drop a claim still in use.
pub fn channels_listing(
    conn: &mut DbConnection,
    tenant: TenantId,
    domain: &Domain,
) -> Result<Vec<(String, String)>, StoreError> {
    Ok(channel_domains::table
        .inner_join(channels::table.on(channels::id.eq(channel_domains::channel_id)))
        .filter(channel_domains::tenant_id.eq(tenant.to_string()))
        .filter(channel_domains::domain.eq(domain.as_str()))
        .select((channels::id, channels::name))
        .order(channels::name)
        .load(conn)?)
}

/// Drops a claim. Refused while a channel lists the domain: the admin removes it there
/// first, so that no channel is left naming a domain nobody proves.
pub fn delete(
    conn: &mut DbConnection,
    tenant: TenantId,
    id: DomainClaimId,
    actor: AuditActor,
) -> Result<(), StoreError> {
    write_transaction(conn, |conn| {
        let claim = get(conn, tenant, id)?;
        drop_claim(conn, &claim, actor)
    })
}

fn drop_claim(
    conn: &mut DbConnection,
    claim: &DomainClaim,
    actor: AuditActor,
) -> Result<(), StoreError> {
    let users = channels_listing(conn, claim.tenant, &claim.domain)?;
    if !users.is_empty() {
        let names: Vec<String> = users
            .iter()
            .map(|(id, name)| format!("\"{name}\" ({id})"))
            .collect();
        return Err(StoreError::Conflict {
            code: "domain_in_use",
            detail: format!(
                "{} is listed by the channel(s) {}: remove it there first",
                claim.domain,
                names.join(", ")
            ),
        });
    }
    diesel::delete(domain_claims::table.filter(domain_claims::id.eq(claim.id.to_string())))
        .execute(conn)?;
    // Keys for a domain nobody claims any more sign nothing; their private halves go too.
    super::dkim_keys::remove_all(conn, claim.tenant, &claim.domain)?;
    audit::record_about(
        conn,
        claim.tenant,
        &claim.id,
        actor,
        "domain.deleted",
        json!({ "domain": claim.domain.as_str(), "state": claim.state.as_str() }),
    )
}

/// Removes failed claims created before `created_before` (stored micros): claims nobody
/// proved within the claim window and nobody removed since. Each goes as a deletion does,
/// keys included, audited `domain.deleted` with the actor `system`. Returns how many went.
pub fn purge_failed(conn: &mut DbConnection, created_before: i64) -> Result<usize, StoreError> {
    let stale: Vec<ClaimRow> = domain_claims::table
        .filter(domain_claims::state.eq(ClaimState::Failed.as_str()))
        .filter(domain_claims::created_at.lt(created_before))
        .select(ClaimRow::as_select())
        .load(conn)?;
    let mut purged = 0;
    for row in stale {
        let claim = row.into_claim()?;
        write_transaction(conn, |conn| {
            // Still failed (a check on demand may have proven it since the read).
            let now = get(conn, claim.tenant, claim.id)?;
            if now.state != ClaimState::Failed {
                return Ok(());
            }
            match drop_claim(conn, &now, AuditActor::System) {
                Ok(()) => purged += 1,
                // A channel still names the domain: the claim stays until the admin acts.
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
            Ok::<_, StoreError>(())
        })?;
    }
    Ok(purged)
}

/// A due claim for the scheduler.
#[derive(Debug, Clone, Copy)]
pub struct DueClaim {
    pub tenant: TenantId,
    pub id: DomainClaimId,
}

impl DueClaim {
    pub(super) fn parse(tenant: &str, id: &str) -> Result<Self, StoreError> {
        Ok(Self {
            tenant: tenant.parse().map_err(StoreError::corrupt)?,
            id: id.parse().map_err(StoreError::corrupt)?,
        })
    }
}

/// Now, and the end of a scheduler's lease taken now (both in stored micros).
pub(super) fn lease_from_now(lease: std::time::Duration) -> (i64, i64) {
    let now = now_micros();
    let until = now.saturating_add(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX / 2));
    (now, until)
}

/// Takes up to `limit` claims whose check is due, pushing each one's next check `lease`
/// ahead so that another process does not take it too; the check's result then sets the real
/// next time.
pub fn claim_due(
    conn: &mut DbConnection,
    lease: std::time::Duration,
    limit: i64,
) -> Result<Vec<DueClaim>, StoreError> {
    let (now, until) = lease_from_now(lease);
    let due: Vec<(String, String, i64)> = domain_claims::table
        .filter(domain_claims::next_check_at.le(now))
        .order(domain_claims::next_check_at)
        .select((
            domain_claims::tenant_id,
            domain_claims::id,
            domain_claims::next_check_at.assume_not_null(),
        ))
        .limit(limit)
        .load(conn)?;
    let mut taken = Vec::new();
    for (tenant, id, was) in due {
        let won = diesel::update(
            domain_claims::table
                .filter(domain_claims::id.eq(&id))
                .filter(domain_claims::next_check_at.eq(was)),
        )
        .set(domain_claims::next_check_at.eq(until))
        .execute(conn)?;
        if won == 1 {
            taken.push(DueClaim::parse(&tenant, &id)?);
        }
    }
    Ok(taken)
}

/// What recording a check did.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub claim: DomainClaim,
    pub transition: Option<Transition>,
    /// Held messages sent back to the queue because the domain is verified again.
    pub released: usize,
}

/// Records one proof check. `decide` applies the rules to the claim as it is now (another
/// check may have been recorded since the lookup started). A domain that becomes verified
/// releases the mail held for it; one that lapses or fails is reported (webhook, audit, and
/// email to the tenant's admins for a lapse), all in the same transaction.
pub fn record_check(
    conn: &mut DbConnection,
    tenant: TenantId,
    id: DomainClaimId,
    check: &ProofCheck,
    actor: AuditActor,
    decide: impl Fn(ClaimProgress) -> ClaimChange,
) -> Result<Recorded, StoreError> {
    write_transaction(conn, |conn| {
        let before = get(conn, tenant, id)?;
        let change = decide(before.progress());
        let now = now_micros();
        let record = before.record();
        let last = json!({
            "at": from_micros(now)?,
            "status": check.status(),
            "code": match check {
                ProofCheck::Missing(miss) => Some(miss.code()),
                ProofCheck::TempError(_) => Some("temp_error"),
                ProofCheck::Found => None,
            },
            "message": check.message(&record),
        });
        let progress = change.progress;
        let verified_at = match change.transition {
            Some(Transition::Verified { .. }) => Some(now),
            _ => before.verified_at.map(|t| t.timestamp_micros()),
        };
        let lapsed_at = match change.transition {
            Some(Transition::Lapsed) => Some(now),
            Some(Transition::Verified { .. }) => None,
            _ => before.lapsed_at.map(|t| t.timestamp_micros()),
        };
        diesel::update(domain_claims::table.filter(domain_claims::id.eq(id.to_string())))
            .set((
                domain_claims::state.eq(progress.state.as_str()),
                domain_claims::misses.eq(i32::try_from(progress.misses).unwrap_or(i32::MAX)),
                domain_claims::temp_failures
                    .eq(i32::try_from(progress.temp_failures).unwrap_or(i32::MAX)),
                domain_claims::last_checked_at.eq(now),
                domain_claims::next_check_at.eq(change.next_check_at.map(|t| t.timestamp_micros())),
                domain_claims::verified_at.eq(verified_at),
                domain_claims::lapsed_at.eq(lapsed_at),
                domain_claims::last_check.eq(last.to_string()),
            ))
            .execute(conn)?;
        let claim = get(conn, tenant, id)?;
        let released = match change.transition {
            Some(transition) => announce(conn, &claim, transition, &last, actor)?,
            None => 0,
        };
        Ok(Recorded {
            claim,
            transition: change.transition,
            released,
        })
    })
}

/// The event, audit line and (for a verification) released mail of a change of state.
fn announce(
    conn: &mut DbConnection,
    claim: &DomainClaim,
    transition: Transition,
    last_check: &Value,
    actor: AuditActor,
) -> Result<usize, StoreError> {
    let record = claim.record();
    let (action, kind) = match transition {
        Transition::Verified { .. } => ("domain.verified", EventType::DomainVerified),
        Transition::Lapsed => ("domain.lapsed", EventType::DomainLapsed),
        Transition::Failed => ("domain.failed", EventType::DomainFailed),
    };
    let released = match transition {
        Transition::Verified { .. } => messages::release_held(
            conn,
            claim.tenant,
            Release::FromDomain {
                reason: "domain_not_verified",
                domain: &claim.domain,
            },
            "the From's domain is verified",
        )?,
        _ => 0,
    };
    let data = json!({
        "domain": {
            "id": claim.id,
            "domain": claim.domain.as_str(),
            "state": claim.state.as_str(),
            "record": {"type": "TXT", "name": record.name, "value": record.value},
        },
        "was": match transition {
            Transition::Verified { was } => was.as_str(),
            Transition::Lapsed => ClaimState::Verified.as_str(),
            Transition::Failed => ClaimState::Pending.as_str(),
        },
        "last_check": last_check,
        "released": released,
    });
    audit::record_about(conn, claim.tenant, &claim.id, actor, action, data.clone())?;
    notifications::emit(
        conn,
        &Event {
            tenant: claim.tenant,
            kind,
            channel: None,
            data,
        },
    )?;
    Ok(released)
}
