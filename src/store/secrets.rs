//! Sealed secrets of a tenant, addressed by (owner record, field). Plaintext goes in and
//! comes out as `SecretString`; only `Sealed` bytes reach the database.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use secrecy::SecretString;

use super::schema::secrets;
use super::time::{from_micros, now_micros};
use super::{DbConnection, StoreError, tenant_keys};
use crate::domain::TenantId;
use crate::vault::{SealContext, Sealed, Vault, VaultError};

/// Seals `secret` for (tenant, owner, field) and stores it, replacing an older value.
/// Returns when it was stored.
pub fn put(
    conn: &mut DbConnection,
    vault: &Vault,
    tenant: TenantId,
    owner: &str,
    field: &str,
    secret: &SecretString,
) -> Result<DateTime<Utc>, StoreError> {
    let key = tenant_keys::current(conn, vault, tenant)?;
    let sealed = key.seal(
        &SealContext {
            tenant,
            record: owner,
            field,
        },
        secret,
    );
    let now = now_micros();
    let target = secrets::table
        .filter(secrets::tenant_id.eq(tenant.to_string()))
        .filter(secrets::owner_id.eq(owner))
        .filter(secrets::field.eq(field));
    let updated = diesel::update(target)
        .set((
            secrets::sealed.eq(sealed.as_bytes()),
            secrets::key_version.eq(i64::from(key.version)),
            secrets::updated_at.eq(now),
        ))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(secrets::table)
            .values((
                secrets::tenant_id.eq(tenant.to_string()),
                secrets::owner_id.eq(owner),
                secrets::field.eq(field),
                secrets::sealed.eq(sealed.as_bytes()),
                secrets::key_version.eq(i64::from(key.version)),
                secrets::created_at.eq(now),
                secrets::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    from_micros(now)
}

/// Opens the secret stored for (tenant, owner, field), if there is one.
pub fn get(
    conn: &mut DbConnection,
    vault: &Vault,
    tenant: TenantId,
    owner: &str,
    field: &str,
) -> Result<Option<SecretString>, StoreError> {
    let Some(bytes) = secrets::table
        .filter(secrets::tenant_id.eq(tenant.to_string()))
        .filter(secrets::owner_id.eq(owner))
        .filter(secrets::field.eq(field))
        .select(secrets::sealed)
        .first::<Vec<u8>>(conn)
        .optional()?
    else {
        return Ok(None);
    };
    let sealed = Sealed::from_bytes(bytes);
    let version = sealed.key_version().map_err(VaultError::from)?;
    let key = tenant_keys::version(conn, vault, tenant, version)?;
    match key.open(
        &SealContext {
            tenant,
            record: owner,
            field,
        },
        &sealed,
    ) {
        Ok(secret) => Ok(Some(secret)),
        Err(e) => {
            // Never the value: only where it was and that it did not open.
            tracing::error!(tenant_id = %tenant, owner, field, "a sealed secret does not open in its place: tampered or moved");
            Err(VaultError::from(e).into())
        }
    }
}

/// Deletes every secret of one owner record (a deleted channel).
pub fn delete_owner(
    conn: &mut DbConnection,
    tenant: TenantId,
    owner: &str,
) -> Result<usize, StoreError> {
    Ok(diesel::delete(
        secrets::table
            .filter(secrets::tenant_id.eq(tenant.to_string()))
            .filter(secrets::owner_id.eq(owner)),
    )
    .execute(conn)?)
}
