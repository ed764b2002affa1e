//! DKIM keys of a tenant's sending domains: making the first, rotating, what to publish,
//! retiring rotated keys after `RETIRING_FOR`, and the key the delivery loop signs with.
//! The private key is a sealed secret (`secrets`, owner = key id, field `dkim_private_key`)
//! and lives only while the key is active.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use secrecy::SecretString;

use super::schema::dkim_keys;
use super::time::{from_micros, now_micros};
use super::{DbConnection, StoreError, audit, secrets, write_transaction};
use crate::domain::dkim::{
    ALGORITHM, DkimKeyState, DkimRecord, DkimSelector, RETIRING_FOR, RSA_BITS,
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

fn active(
    conn: &mut DbConnection,
    tenant: TenantId,
    domain: &Domain,
) -> Result<Option<KeyRow>, StoreError> {
    Ok(rows(conn, tenant, domain, &[DkimKeyState::Active])?
        .into_iter()
        .next())
}

/// A new key pair. Made before any transaction: RSA key generation takes a while (tens to
/// hundreds of milliseconds), and SQLite's write lock must not wait for it.
fn new_pair() -> Result<DkimKeyPair, StoreError> {
    Ok(DkimKeyPair::generate_rsa(RSA_BITS)?)
}

/// Stores `pair` as the tenant's active key for `domain`, sealing its private half.
fn insert_active(
    conn: &mut DbConnection,
    vault: &Vault,
    tenant: TenantId,
    domain: &Domain,
    pair: &DkimKeyPair,
    now: i64,
) -> Result<KeyRow, StoreError> {
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
            dkim_keys::state.eq(DkimKeyState::Active.as_str()),
            dkim_keys::created_at.eq(now),
        ))
        .execute(conn)
        .map_err(|e| {
            StoreError::on_unique(e, "dkim_key_exists", || {
                format!("{domain} already has an active DKIM key")
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
        state: DkimKeyState::Active.as_str().to_owned(),
        created_at: now,
        retiring_since: None,
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

/// The tenant's active key for `domain`, made (and recorded as `dkim.key_created`) when
/// there is none yet; returns its record. Two callers at once make one key: the second
/// finds the first's.
pub fn ensure_active(
    conn: &mut DbConnection,
    vault: &Vault,
    tenant: TenantId,
    domain: &Domain,
    actor: AuditActor,
) -> Result<DkimRecord, StoreError> {
    if let Some(row) = active(conn, tenant, domain)? {
        return row.record();
    }
    let pair = new_pair()?;
    let made = write_transaction(conn, |conn| {
        if let Some(row) = active(conn, tenant, domain)? {
            return Ok(row);
        }
        let row = insert_active(conn, vault, tenant, domain, &pair, now_micros())?;
        audited(
            conn,
            tenant,
            actor,
            "dkim.key_created",
            domain,
            serde_json::json!({ "selector": row.selector, "algorithm": ALGORITHM }),
        )?;
        Ok(row)
    });
    match made {
        Ok(row) => row.record(),
        // Another process made it between our look and our insert (PostgreSQL).
        Err(StoreError::Conflict {
            code: "dkim_key_exists",
            ..
        }) => active(conn, tenant, domain)?
            .ok_or(StoreError::NotFound)?
            .record(),
        Err(e) => Err(e),
    }
}

/// Every record the tenant must keep in DNS for `domain`: the active key first, then the
/// retiring ones, newest first.
pub fn published(
    conn: &mut DbConnection,
    tenant: TenantId,
    domain: &Domain,
) -> Result<Vec<DkimRecord>, StoreError> {
    let rows = rows(
        conn,
        tenant,
        domain,
        &[DkimKeyState::Active, DkimKeyState::Retiring],
    )?;
    let mut records = rows
        .into_iter()
        .map(KeyRow::record)
        .collect::<Result<Vec<_>, _>>()?;
    records.sort_by_key(|r| r.state != DkimKeyState::Active);
    Ok(records)
}

/// A new active key under a new selector; the one it replaces becomes `retiring`: it signs
/// nothing from now on (its private half is deleted at once) but stays published until
/// `RETIRING_FOR` has passed. Recorded as `dkim.key_rotated` (`dkim.key_created` when the
/// domain had no key). Returns the new key's record.
pub fn rotate(
    conn: &mut DbConnection,
    vault: &Vault,
    tenant: TenantId,
    domain: &Domain,
    actor: AuditActor,
) -> Result<DkimRecord, StoreError> {
    let pair = new_pair()?;
    write_transaction(conn, |conn| {
        let now = now_micros();
        let old = active(conn, tenant, domain)?;
        if let Some(old) = &old {
            diesel::update(dkim_keys::table.filter(dkim_keys::id.eq(&old.id)))
                .set((
                    dkim_keys::state.eq(DkimKeyState::Retiring.as_str()),
                    dkim_keys::retiring_since.eq(now),
                ))
                .execute(conn)?;
            secrets::delete_owner(conn, tenant, &old.id)?;
        }
        let new = insert_active(conn, vault, tenant, domain, &pair, now)?;
        let (action, detail) = match &old {
            Some(old) => (
                "dkim.key_rotated",
                serde_json::json!({
                    "selector": new.selector,
                    "previous_selector": old.selector,
                    "previous_retire_after": from_micros(now)? + RETIRING_FOR,
                }),
            ),
            None => (
                "dkim.key_created",
                serde_json::json!({ "selector": new.selector, "algorithm": ALGORITHM }),
            ),
        };
        audited(conn, tenant, actor, action, domain, detail)?;
        new.record()
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
