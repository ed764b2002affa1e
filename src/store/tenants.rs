//! Tenants and their sending policy. Creating a tenant creates its first admin and token in
//! the same transaction: a tenant nobody can administer never exists.

use diesel::prelude::*;

use super::messages::{self, Release};
use super::schema::tenants;
use super::time::{from_micros, now_micros};
use super::write_transaction;
use super::{DbConnection, StoreError, audit, tenant_keys, tokens, users};
use crate::domain::tenancy::Tenant;
use crate::domain::{
    AuditActor, AuditEvent, DisplayName, EmailAddress, FallbackPolicy, Role, TenantId,
    TenantPolicy, TokenId, User,
};
use crate::vault::{TokenHash, Vault};

#[derive(Queryable, Selectable)]
#[diesel(table_name = tenants)]
struct TenantRow {
    id: String,
    name: String,
    sending_enabled: bool,
    fallback_policy: String,
    shared_pool_allowed: bool,
    created_at: i64,
    updated_at: i64,
    unsubscribe_by_default: bool,
}

#[derive(Insertable)]
#[diesel(table_name = tenants)]
struct NewTenantRow<'a> {
    id: String,
    name: &'a str,
    sending_enabled: bool,
    fallback_policy: &'a str,
    shared_pool_allowed: bool,
    created_at: i64,
    updated_at: i64,
}

impl TenantRow {
    fn into_tenant(self) -> Result<Tenant, StoreError> {
        let policy = TenantPolicy {
            sending_enabled: self.sending_enabled,
            fallback_policy: self.fallback_policy.parse().map_err(StoreError::corrupt)?,
            shared_pool_allowed: self.shared_pool_allowed,
            unsubscribe_by_default: self.unsubscribe_by_default,
        };
        Ok(Tenant {
            id: self.id.parse().map_err(StoreError::corrupt)?,
            name: DisplayName::parse(&self.name).map_err(StoreError::corrupt)?,
            policy,
            created_at: from_micros(self.created_at)?,
            updated_at: from_micros(self.updated_at)?,
        })
    }
}

/// What creating a tenant returns: the tenant, its first admin, and that admin's token id.
pub struct CreatedTenant {
    pub tenant: Tenant,
    pub admin: User,
    pub admin_token_id: TokenId,
}

pub fn create_with_admin(
    conn: &mut DbConnection,
    vault: &Vault,
    actor: AuditActor,
    name: &DisplayName,
    admin_email: &EmailAddress,
    admin_name: &DisplayName,
    admin_token: TokenHash,
) -> Result<CreatedTenant, StoreError> {
    write_transaction(conn, |conn| {
        let id = TenantId::generate();
        let now = now_micros();
        let policy = TenantPolicy::default();
        diesel::insert_into(tenants::table)
            .values(NewTenantRow {
                id: id.to_string(),
                name: name.as_str(),
                sending_enabled: policy.sending_enabled,
                fallback_policy: policy.fallback_policy.as_str(),
                shared_pool_allowed: policy.shared_pool_allowed,
                created_at: now,
                updated_at: now,
            })
            .execute(conn)?;
        tenant_keys::create_first(conn, vault, id)?;
        let admin = users::insert(
            conn,
            id,
            &users::NewUser {
                email: admin_email.clone(),
                name: admin_name.clone(),
                role: Role::Admin,
                team_id: None,
            },
        )?;
        let token = tokens::insert(
            conn,
            id,
            admin.id,
            admin_token,
            Some("created with the tenant"),
            None,
        )?;
        audit::record(
            conn,
            &AuditEvent {
                tenant: Some(id),
                actor,
                action: "tenant.created",
                target: Some(id.to_string()),
                detail: serde_json::json!({ "admin_user_id": admin.id }),
            },
        )?;
        Ok(CreatedTenant {
            tenant: get(conn, id)?,
            admin,
            admin_token_id: token.id,
        })
    })
}

pub fn get(conn: &mut DbConnection, id: TenantId) -> Result<Tenant, StoreError> {
    let row: TenantRow = tenants::table
        .find(id.to_string())
        .select(TenantRow::as_select())
        .first(conn)?;
    row.into_tenant()
}

/// Every tenant, for the platform operator.
pub fn list(conn: &mut DbConnection) -> Result<Vec<Tenant>, StoreError> {
    let rows: Vec<TenantRow> = tenants::table
        .order((tenants::created_at, tenants::id))
        .select(TenantRow::as_select())
        .load(conn)?;
    rows.into_iter().map(TenantRow::into_tenant).collect()
}

/// Replaces the tenant's name and policy in one transaction. Held mail
/// that the new policy lets go is released in the same transaction: everything held by the
/// kill switch when sending is switched back on, and everything waiting for an unusable
/// channel when the policy becomes `fallback`.
pub fn update(
    conn: &mut DbConnection,
    id: TenantId,
    name: &DisplayName,
    policy: &TenantPolicy,
) -> Result<Tenant, StoreError> {
    write_transaction(conn, |conn| {
        let before = get(conn, id)?;
        if policy.sending_enabled && !before.policy.sending_enabled {
            messages::release_held(
                conn,
                id,
                Release::Reason("sending_disabled"),
                "the tenant's sending was switched back on",
            )?;
        }
        if policy.fallback_policy == FallbackPolicy::Fallback
            && before.policy.fallback_policy != FallbackPolicy::Fallback
        {
            messages::release_held(
                conn,
                id,
                Release::Reason("channel_unavailable"),
                "the tenant's policy changed to fallback",
            )?;
        }
        let now = now_micros();
        let changed = diesel::update(tenants::table.find(id.to_string()))
            .set((
                tenants::name.eq(name.as_str()),
                tenants::sending_enabled.eq(policy.sending_enabled),
                tenants::fallback_policy.eq(policy.fallback_policy.as_str()),
                tenants::shared_pool_allowed.eq(policy.shared_pool_allowed),
                tenants::unsubscribe_by_default.eq(policy.unsubscribe_by_default),
                tenants::updated_at.eq(now),
            ))
            .execute(conn)?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        get(conn, id)
    })
}

/// Deletes a tenant with everything it owns. Its data keys go with it, so its sealed secrets
/// are unrecoverable from here on, even from a copy of the secret rows.
pub fn delete(conn: &mut DbConnection, id: TenantId, actor: AuditActor) -> Result<(), StoreError> {
    write_transaction(conn, |conn| {
        let deleted = diesel::delete(tenants::table.find(id.to_string())).execute(conn)?;
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        audit::record(
            conn,
            &AuditEvent {
                tenant: None,
                actor,
                action: "tenant.deleted",
                target: Some(id.to_string()),
                detail: serde_json::json!({}),
            },
        )
    })
}
