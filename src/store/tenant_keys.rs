//! Tenant data keys, stored wrapped by a master key: creation, lookup, re-wrapping under a
//! new master key, and rotation of a tenant's data key (re-sealing its secrets).

use diesel::prelude::*;

use super::schema::{secrets, tenant_keys};
use super::time::now_micros;
use super::write_transaction;
use super::{DbConnection, StoreError};
use crate::domain::TenantId;
use crate::vault::{DataKey, SealContext, Sealed, Vault, VaultError, WrappedKey};

fn version_u32(v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::corrupt(format!("data key version {v}")))
}

fn insert(
    conn: &mut DbConnection,
    tenant: TenantId,
    version: u32,
    wrapped: &WrappedKey,
) -> Result<(), StoreError> {
    diesel::insert_into(tenant_keys::table)
        .values((
            tenant_keys::tenant_id.eq(tenant.to_string()),
            tenant_keys::version.eq(i64::from(version)),
            tenant_keys::master_key_id.eq(&wrapped.master_key_id),
            tenant_keys::wrapped.eq(&wrapped.bytes),
            tenant_keys::created_at.eq(now_micros()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Gives a new tenant its first data key.
pub fn create_first(
    conn: &mut DbConnection,
    vault: &Vault,
    tenant: TenantId,
) -> Result<(), StoreError> {
    let (_, wrapped) = vault.new_data_key(tenant, 1);
    insert(conn, tenant, 1, &wrapped)
}

fn load(
    conn: &mut DbConnection,
    vault: &Vault,
    tenant: TenantId,
    version: Option<u32>,
) -> Result<DataKey, StoreError> {
    let mut query = tenant_keys::table
        .filter(tenant_keys::tenant_id.eq(tenant.to_string()))
        .select((
            tenant_keys::version,
            tenant_keys::master_key_id,
            tenant_keys::wrapped,
        ))
        .order(tenant_keys::version.desc())
        .into_boxed();
    if let Some(v) = version {
        query = query.filter(tenant_keys::version.eq(i64::from(v)));
    }
    let (version, master_key_id, bytes) = query.first::<(i64, String, Vec<u8>)>(conn)?;
    Ok(vault.data_key(
        tenant,
        version_u32(version)?,
        &WrappedKey {
            master_key_id,
            bytes,
        },
    )?)
}

/// The data key that seals the tenant's new secrets (its highest version).
pub fn current(
    conn: &mut DbConnection,
    vault: &Vault,
    tenant: TenantId,
) -> Result<DataKey, StoreError> {
    load(conn, vault, tenant, None)
}

/// A specific version, to open a secret sealed before a rotation.
pub fn version(
    conn: &mut DbConnection,
    vault: &Vault,
    tenant: TenantId,
    version: u32,
) -> Result<DataKey, StoreError> {
    load(conn, vault, tenant, Some(version))
}

/// How many data keys each master key wraps.
pub fn usage(conn: &mut DbConnection) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(tenant_keys::table
        .group_by(tenant_keys::master_key_id)
        .select((tenant_keys::master_key_id, diesel::dsl::count_star()))
        .order(tenant_keys::master_key_id)
        .load(conn)?)
}

/// At start: every master key that wraps data must be configured, and must be the right
/// key. Checks one data key per master key, so a wrong key is named before any request.
pub fn verify_master_keys(conn: &mut DbConnection, vault: &Vault) -> Result<(), StoreError> {
    for (master, count) in usage(conn)? {
        let (tenant, version, bytes) = tenant_keys::table
            .filter(tenant_keys::master_key_id.eq(&master))
            .select((
                tenant_keys::tenant_id,
                tenant_keys::version,
                tenant_keys::wrapped,
            ))
            .first::<(String, i64, Vec<u8>)>(conn)?;
        let tenant: TenantId = tenant.parse().map_err(StoreError::corrupt)?;
        let wrapped = WrappedKey {
            master_key_id: master.clone(),
            bytes,
        };
        match vault.data_key(tenant, version_u32(version)?, &wrapped) {
            Ok(_) => {}
            Err(VaultError::MissingMasterKey(id)) => {
                return Err(StoreError::Vault(VaultError::Unsupported(format!(
                    "master key `{id}` wraps {count} tenant data key(s) but is not configured; add it to SWITCHBOARD_MASTER_KEYS or the key file"
                ))));
            }
            Err(VaultError::DataKey { .. }) => {
                return Err(StoreError::Vault(VaultError::Unsupported(format!(
                    "master key `{master}` is configured, but it is not the key that wrapped the data (it does not open tenant data keys); check SWITCHBOARD_MASTER_KEYS or the key file"
                ))));
            }
            Err(other) => return Err(other.into()),
        }
    }
    Ok(())
}

/// Where a re-wrapping pass has got to: the last (tenant, version) it looked at.
pub type RewrapCursor = Option<(String, i64)>;

/// Re-wraps the next `batch` data keys after `after` (in primary-key order) that are not
/// under `target`, in one transaction. Returns how many it re-wrapped and the cursor for the
/// next batch (`None` at the end of the table). Walking the primary key keeps each batch a
/// short index range instead of a scan of every remaining row. A key re-wrapped by someone
/// else meanwhile is skipped (compare-and-swap on the envelope).
pub fn rewrap_batch(
    conn: &mut DbConnection,
    vault: &Vault,
    target: &str,
    after: &RewrapCursor,
    batch: i64,
) -> Result<(usize, RewrapCursor), StoreError> {
    write_transaction(conn, |conn| {
        let mut query = tenant_keys::table
            .filter(tenant_keys::master_key_id.ne(target))
            .select((
                tenant_keys::tenant_id,
                tenant_keys::version,
                tenant_keys::master_key_id,
                tenant_keys::wrapped,
            ))
            .order((tenant_keys::tenant_id, tenant_keys::version))
            .limit(batch)
            .into_boxed();
        if let Some((tenant, version)) = after {
            query = query.filter(
                tenant_keys::tenant_id
                    .gt(tenant.clone())
                    .or(tenant_keys::tenant_id
                        .eq(tenant.clone())
                        .and(tenant_keys::version.gt(*version))),
            );
        }
        let rows = query.load::<(String, i64, String, Vec<u8>)>(conn)?;
        let next = if (rows.len() as i64) < batch {
            None
        } else {
            rows.last().map(|(t, v, _, _)| (t.clone(), *v))
        };
        let now = now_micros();
        let mut done = 0;
        for (tenant_text, version, master_key_id, bytes) in rows {
            let tenant: TenantId = tenant_text.parse().map_err(StoreError::corrupt)?;
            let old = WrappedKey {
                master_key_id,
                bytes,
            };
            let new = vault.rewrap_to(target, tenant, version_u32(version)?, &old)?;
            done += diesel::update(
                tenant_keys::table
                    .filter(tenant_keys::tenant_id.eq(&tenant_text))
                    .filter(tenant_keys::version.eq(version))
                    .filter(tenant_keys::wrapped.eq(&old.bytes)),
            )
            .set((
                tenant_keys::master_key_id.eq(&new.master_key_id),
                tenant_keys::wrapped.eq(&new.bytes),
                tenant_keys::rewrapped_at.eq(now),
            ))
            .execute(conn)?;
        }
        Ok((done, next))
    })
}

/// What a tenant data-key rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantKeyRotation {
    pub new_version: u32,
    pub resealed: usize,
    pub retired_versions: usize,
}

/// Gives the tenant a new data key, re-seals every secret under it, and deletes the old
/// versions. Runs in one transaction: a secret is never left sealed with a deleted key.
pub fn rotate_tenant(
    conn: &mut DbConnection,
    vault: &Vault,
    tenant: TenantId,
) -> Result<TenantKeyRotation, StoreError> {
    write_transaction(conn, |conn| {
        let old = current(conn, vault, tenant)?;
        let new_version = old.version + 1;
        let (new_key, wrapped) = vault.new_data_key(tenant, new_version);
        insert(conn, tenant, new_version, &wrapped)?;
        let rows = secrets::table
            .filter(secrets::tenant_id.eq(tenant.to_string()))
            .filter(secrets::key_version.lt(i64::from(new_version)))
            .select((
                secrets::owner_id,
                secrets::field,
                secrets::sealed,
                secrets::key_version,
            ))
            .load::<(String, String, Vec<u8>, i64)>(conn)?;
        let mut resealed = 0;
        let now = now_micros();
        for (owner, field, sealed, key_version) in rows {
            let context = SealContext {
                tenant,
                record: &owner,
                field: &field,
            };
            let key = version(conn, vault, tenant, version_u32(key_version)?)?;
            let plaintext = key
                .open(&context, &Sealed::from_bytes(sealed))
                .map_err(VaultError::from)?;
            let resealed_value = new_key.seal(&context, &plaintext);
            diesel::update(
                secrets::table
                    .filter(secrets::tenant_id.eq(tenant.to_string()))
                    .filter(secrets::owner_id.eq(&owner))
                    .filter(secrets::field.eq(&field)),
            )
            .set((
                secrets::sealed.eq(resealed_value.as_bytes()),
                secrets::key_version.eq(i64::from(new_version)),
                secrets::updated_at.eq(now),
            ))
            .execute(conn)?;
            resealed += 1;
        }
        let retired_versions = diesel::delete(
            tenant_keys::table
                .filter(tenant_keys::tenant_id.eq(tenant.to_string()))
                .filter(tenant_keys::version.lt(i64::from(new_version))),
        )
        .execute(conn)?;
        Ok(TenantKeyRotation {
            new_version,
            resealed,
            retired_versions,
        })
    })
}
