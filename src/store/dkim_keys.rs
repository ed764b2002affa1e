//! DKIM keys of a tenant's sending domains: a key per claim, made pending; promoted to
//! active once DNS shows its record (the key it replaces then retires); rotation; what to
//! publish; retiring rotated keys after `RETIRING_FOR`; and the key the delivery loop signs
//! with. The private key is a sealed secret (`secrets`, owner = key id, field
//! `dkim_private_key`) and lives only while the key is pending or active.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use secrecy::SecretString;

use super::schema::dkim_keys;
use super::time::{from_micros, now_micros};
use super::{DbConnection, StoreError, audit, secrets, write_transaction};
use crate::domain::dkim::{
    ALGORITHM, DkimKeyState, DkimRecord, DkimSelector, RETIRING_FOR, RSA_BITS, Unsigned,
};
use crate::domain::{AuditActor, Domain, TenantId};
use crate::vault::Vault;
use crate::vault::dkim::DkimKeyPair;

/// The secret field a key's private half is sealed under.
pub const PRIVATE_KEY_FIELD: &str = "dkim_private_key";

#[derive(Queryable, Selectable)]
#[diesel(table_name = dkim_keys)]
struct KeyRow {
    id: String,
    domain: String,
    selector: String,
    public_key: Vec<u8>,
    state: String,
    created_at: i64,
    retiring_since: Option<i64>,
    activated_at: Option<i64>,
}

impl KeyRow {
    fn record(self) -> Result<DkimRecord, StoreError> {
        let domain = Domain::parse(&self.domain).map_err(StoreError::corrupt)?;
        Ok(DkimRecord::of(
            &domain,
            DkimSelector::parse(&self.selector).map_err(StoreError::corrupt)?,
            &self.public_key,
            self.state.parse().map_err(StoreError::corrupt)?,
            from_micros(self.created_at)?,
            self.activated_at.map(from_micros).transpose()?,
            self.retiring_since.map(from_micros).transpose()?,
        ))
    }
}

/// The tenant's keys for `domain` in one of `states`, newest first.
fn rows(
    conn: &mut DbConnection,
    tenant: TenantId,
    domain: &Domain,
    states: &[DkimKeyState],
) -> Result<Vec<KeyRow>, StoreError> {
    let states: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
    Ok(dkim_keys::table
        .filter(dkim_keys::tenant_id.eq(tenant.to_string()))
        .filter(dkim_keys::domain.eq(domain.as_str()))
        .filter(dkim_keys::state.eq_any(states))
        .order((dkim_keys::created_at.desc(), dkim_keys::id))
        .select(KeyRow::as_select())
        .load(conn)?)
}

/// The tenant's key for `domain` in `state` (at most one pending, one active).
fn one(
    conn: &mut DbConnection,
    tenant: TenantId,
    domain: &Domain,
    state: DkimKeyState,
) -> Result<Option<KeyRow>, StoreError> {
    Ok(rows(conn, tenant, domain, &[state])?.into_iter().next())
}

fn active(
    conn: &mut DbConnection,
    tenant: TenantId,
    domain: &Domain,
) -> Result<Option<KeyRow>, StoreError> {
    one(conn, tenant, domain, DkimKeyState::Active)
}

/// A new key pair. Made before any transaction: RSA key generation takes a while (tens to
/// hundreds of milliseconds), and SQLite's write lock must not wait for it.
pub fn new_pair() -> Result<DkimKeyPair, StoreError> {
    Ok(DkimKeyPair::generate_rsa(RSA_BITS)?)
}

/// Stores `pair` as the tenant's pending key for `domain`, sealing its private half.
fn insert_pending(
    conn: &mut DbConnection,
    vault: &Vault,
    tenant: TenantId,
    domain: &Domain,
    pair: &DkimKeyPair,
    now: i64,
) -> Result<KeyRow, StoreError> {
    let state = DkimKeyState::Pending;
    let id = uuid::Uuid::new_v4().to_string();
    let created = from_micros(now)?;
    let selector = DkimSelector::generate(created);
    diesel::insert_into(dkim_keys::table)
        .values((
            dkim_keys::id.eq(&id),
            dkim_keys::tenant_id.eq(tenant.to_string()),
            dkim_keys::domain.eq(domain.as_str()),
            dkim_keys::selector.eq(selector.as_str()),
            dkim_keys::algorithm.eq(ALGORITHM),
            dkim_keys::public_key.eq(pair.public_key()),
            dkim_keys::state.eq(state.as_str()),
            dkim_keys::created_at.eq(now),
        ))
        .execute(conn)
        .map_err(|e| {
            StoreError::on_unique(e, "dkim_key_exists", || {
                format!("{domain} already has a {state} DKIM key")
            })
        })?;
    secrets::put(
        conn,
        vault,
        tenant,
        &id,
        PRIVATE_KEY_FIELD,
        pair.private_key(),
    )?;
    Ok(KeyRow {
        id,
        domain: domain.as_str().to_owned(),
        selector: selector.as_str().to_owned(),
        public_key: pair.public_key().to_vec(),
        state: state.as_str().to_owned(),
        created_at: now,
        retiring_since: None,
        activated_at: None,
    })
}

fn audited(
    conn: &mut DbConnection,
    tenant: TenantId,
    actor: AuditActor,
    action: &'static str,
    domain: &Domain,
    detail: serde_json::Value,
) -> Result<(), StoreError> {
    audit::record_about(conn, tenant, domain, actor, action, detail)
}

/// Every record the tenant must have in DNS for `domain`: the pending key first (the one
/// to publish now), then the active one, then the retiring ones, newest first.
pub fn published(
    conn: &mut DbConnection,
    tenant: TenantId,
    domain: &Domain,
) -> Result<Vec<DkimRecord>, StoreError> {
    let rows = rows(
        conn,
        tenant,
        domain,
        &[
            DkimKeyState::Pending,
            DkimKeyState::Active,
            DkimKeyState::Retiring,
        ],
    )?;
    let mut records = rows
        .into_iter()
        .map(KeyRow::record)
        .collect::<Result<Vec<_>, _>>()?;
    records.sort_by_key(|r| match r.state {
        DkimKeyState::Pending => 0,
        DkimKeyState::Active => 1,
        _ => 2,
    });
    Ok(records)
}

/// Deletes a key that never signed (a pending one replaced by a newer), private half too.
fn discard(conn: &mut DbConnection, tenant: TenantId, row: &KeyRow) -> Result<(), StoreError> {
    secrets::delete_owner(conn, tenant, &row.id)?;
    diesel::delete(dkim_keys::table.filter(dkim_keys::id.eq(&row.id))).execute(conn)?;
    Ok(())
}

/// What `rotate` did.
#[derive(Debug, Clone)]
pub struct Rotated {
    /// The new key: pending until its record is seen.
    pub record: DkimRecord,
    /// A pending key it replaced (its record, if published, can go).
    pub replaced_pending: Option<DkimSelector>,
    /// The key that keeps signing until the new one is seen.
    pub still_signing: Option<DkimSelector>,
}

/// A new key under a new selector, pending: the active key (if any) keeps signing until DNS
/// shows the new record (`activate`). A pending key made before is replaced (deleted: it
/// never signed). Recorded as `dkim.key_rotated` (`dkim.key_created` when the domain had
/// no key at all). `pair` is made by the caller, outside any transaction (`new_pair`).
pub fn rotate(
    conn: &mut DbConnection,
    vault: &Vault,
    tenant: TenantId,
    domain: &Domain,
    pair: &DkimKeyPair,
    actor: AuditActor,
) -> Result<Rotated, StoreError> {
    write_transaction(conn, |conn| {
        let now = now_micros();
        let old_pending = one(conn, tenant, domain, DkimKeyState::Pending)?;
        if let Some(old) = &old_pending {
            discard(conn, tenant, old)?;
        }
        let active = active(conn, tenant, domain)?;
        let new = insert_pending(conn, vault, tenant, domain, pair, now)?;
        let action = if active.is_none() && old_pending.is_none() {
            "dkim.key_created"
        } else {
            "dkim.key_rotated"
        };
        let detail = serde_json::json!({
            "selector": new.selector,
            "algorithm": ALGORITHM,
            "state": DkimKeyState::Pending.as_str(),
            "previous_selector": active.as_ref().map(|a| &a.selector),
            "replaced_pending_selector": old_pending.as_ref().map(|p| &p.selector),
        });
        audited(conn, tenant, actor, action, domain, detail)?;
        let parse = |row: &Option<KeyRow>| {
            row.as_ref()
                .map(|r| DkimSelector::parse(&r.selector).map_err(StoreError::corrupt))
                .transpose()
        };
        Ok(Rotated {
            replaced_pending: parse(&old_pending)?,
            still_signing: parse(&active)?,
            record: new.record()?,
        })
    })
}

/// The tenant's pending key for `domain`, made (`dkim.key_created`) when the domain has no
/// pending or active key: what a new claim gets. `pair` is made by the caller, outside any
/// transaction, and unused when a key exists.
pub fn ensure_key(
    conn: &mut DbConnection,
    vault: &Vault,
    tenant: TenantId,
    domain: &Domain,
    pair: &DkimKeyPair,
    actor: AuditActor,
) -> Result<(), StoreError> {
    write_transaction(conn, |conn| {
        let existing = rows(
            conn,
            tenant,
            domain,
            &[DkimKeyState::Pending, DkimKeyState::Active],
        )?;
        if !existing.is_empty() {
            return Ok(());
        }
        let row = insert_pending(conn, vault, tenant, domain, pair, now_micros())?;
        audited(
            conn,
            tenant,
            actor,
            "dkim.key_created",
            domain,
            serde_json::json!({
                "selector": row.selector,
                "algorithm": ALGORITHM,
                "state": DkimKeyState::Pending.as_str(),
            }),
        )
    })
}

/// Whether the tenant has a key (pending or active) for `domain`: without one, a claim gets
/// one (`ensure_key`).
pub fn has_key(
    conn: &mut DbConnection,
    tenant: TenantId,
    domain: &Domain,
) -> Result<bool, StoreError> {
    Ok(!rows(
        conn,
        tenant,
        domain,
        &[DkimKeyState::Pending, DkimKeyState::Active],
    )?
    .is_empty())
}

/// The tenant's pending key for `domain`, if any: the record to look for in DNS.
pub fn pending(
    conn: &mut DbConnection,
    tenant: TenantId,
    domain: &Domain,
) -> Result<Option<DkimRecord>, StoreError> {
    one(conn, tenant, domain, DkimKeyState::Pending)?
        .map(KeyRow::record)
        .transpose()
}

/// What `activate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activated {
    pub selector: DkimSelector,
    /// The key it replaced, now retiring, and until when to keep its record.
    pub retired: Option<(DkimSelector, DateTime<Utc>)>,
}

/// The pending key `selector` starts signing: DNS shows its record. The active key it
/// replaces becomes `retiring` (its private half is deleted: it signs nothing more; its
/// record stays published for `RETIRING_FOR`). Recorded as `dkim.key_activated`. `None`
/// when the key is no longer pending (another check promoted or a rotation replaced it).
pub fn activate(
    conn: &mut DbConnection,
    tenant: TenantId,
    domain: &Domain,
    selector: &DkimSelector,
    actor: AuditActor,
) -> Result<Option<Activated>, StoreError> {
    write_transaction(conn, |conn| {
        let Some(new) = one(conn, tenant, domain, DkimKeyState::Pending)?
            .filter(|row| row.selector == selector.as_str())
        else {
            return Ok(None);
        };
        let now = now_micros();
        let old = active(conn, tenant, domain)?;
        let mut retired = None;
        if let Some(old) = &old {
            diesel::update(dkim_keys::table.filter(dkim_keys::id.eq(&old.id)))
                .set((
                    dkim_keys::state.eq(DkimKeyState::Retiring.as_str()),
                    dkim_keys::retiring_since.eq(now),
                ))
                .execute(conn)?;
            secrets::delete_owner(conn, tenant, &old.id)?;
            retired = Some((
                DkimSelector::parse(&old.selector).map_err(StoreError::corrupt)?,
                from_micros(now)? + RETIRING_FOR,
            ));
        }
        diesel::update(dkim_keys::table.filter(dkim_keys::id.eq(&new.id)))
            .set((
                dkim_keys::state.eq(DkimKeyState::Active.as_str()),
                dkim_keys::activated_at.eq(now),
            ))
            .execute(conn)?;
        audited(
            conn,
            tenant,
            actor,
            "dkim.key_activated",
            domain,
            serde_json::json!({
                "selector": new.selector,
                "previous_selector": retired.as_ref().map(|(s, _)| s.as_str()),
                "previous_retire_after": retired.as_ref().map(|(_, at)| at),
            }),
        )?;
        Ok(Some(Activated {
            selector: selector.clone(),
            retired,
        }))
    })
}

/// Deletes every key of the tenant for `domain` (its claim was deleted), private halves
/// included. Returns how many there were.
pub fn remove_all(
    conn: &mut DbConnection,
    tenant: TenantId,
    domain: &Domain,
) -> Result<usize, StoreError> {
    write_transaction(conn, |conn| {
        let ids: Vec<String> = dkim_keys::table
            .filter(dkim_keys::tenant_id.eq(tenant.to_string()))
            .filter(dkim_keys::domain.eq(domain.as_str()))
            .select(dkim_keys::id)
            .load(conn)?;
        for id in &ids {
            secrets::delete_owner(conn, tenant, id)?;
        }
        diesel::delete(
            dkim_keys::table
                .filter(dkim_keys::tenant_id.eq(tenant.to_string()))
                .filter(dkim_keys::domain.eq(domain.as_str())),
        )
        .execute(conn)?;
        Ok(ids.len())
    })
}

/// Retires every key that has been retiring for `RETIRING_FOR` at `now` (all tenants: the
/// housekeeping pass). Returns how many.
pub fn retire_due(conn: &mut DbConnection, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let cutoff = (now - RETIRING_FOR).timestamp_micros();
    Ok(diesel::update(
        dkim_keys::table
            .filter(dkim_keys::state.eq(DkimKeyState::Retiring.as_str()))
            .filter(dkim_keys::retiring_since.le(cutoff)),
    )
    .set((
        dkim_keys::state.eq(DkimKeyState::Retired.as_str()),
        dkim_keys::retired_at.eq(now.timestamp_micros()),
    ))
    .execute(conn)?)
}

/// The active key the tenant signs `domain`'s mail with: its id (which names its private
/// half for good: a new key has a new id), selector, and a way to open its private half.
#[derive(Debug, Clone)]
pub struct ActiveKey {
    pub id: String,
    pub selector: DkimSelector,
}

/// The key the tenant's mail from `domain` is signed with, or why it goes unsigned.
pub fn signing_key(
    conn: &mut DbConnection,
    tenant: TenantId,
    domain: &Domain,
) -> Result<Result<ActiveKey, Unsigned>, StoreError> {
    let keys = rows(
        conn,
        tenant,
        domain,
        &[DkimKeyState::Pending, DkimKeyState::Active],
    )?;
    let selector = |row: &KeyRow| DkimSelector::parse(&row.selector).map_err(StoreError::corrupt);
    if let Some(row) = keys
        .iter()
        .find(|r| r.state == DkimKeyState::Active.as_str())
    {
        return Ok(Ok(ActiveKey {
            selector: selector(row)?,
            id: row.id.clone(),
        }));
    }
    Ok(Err(match keys.first() {
        Some(pending) => Unsigned::AwaitingRecord {
            selector: selector(pending)?,
        },
        None => Unsigned::NoKey,
    }))
}

/// The tenant's active key for `domain`, if it has one.
pub fn active_key(
    conn: &mut DbConnection,
    tenant: TenantId,
    domain: &Domain,
) -> Result<Option<ActiveKey>, StoreError> {
    active(conn, tenant, domain)?
        .map(|row| {
            Ok(ActiveKey {
                selector: DkimSelector::parse(&row.selector).map_err(StoreError::corrupt)?,
                id: row.id,
            })
        })
        .transpose()
}

/// Opens the private half of a key (base64 PKCS#8 DER, as `DkimSigningKey::open` takes it).
pub fn private_key(
    conn: &mut DbConnection,
    vault: &Vault,
    tenant: TenantId,
    key: &ActiveKey,
) -> Result<SecretString, StoreError> {
    secrets::get(conn, vault, tenant, &key.id, PRIVATE_KEY_FIELD)?.ok_or(StoreError::NotFound)
}
